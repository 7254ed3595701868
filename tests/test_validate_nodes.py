"""doa check catches wrong fields of kernel and detector nodes before anything runs."""

from __future__ import annotations

import json
from pathlib import Path

from river import drift

from doa import Topology
from doa.detector import detector_node
from doa.kernels import ewm, kernel_node, since_previous


def schemas(tmp_path: Path) -> Path:
    (tmp_path / "obs.avsc").write_text(json.dumps({
        "type": "record", "name": "Obs", "namespace": "v",
        "fields": [{"name": "k", "type": "string"}, {"name": "ts", "type": "long"},
                   {"name": "x", "type": "double"}]}))
    (tmp_path / "feat.avsc").write_text(json.dumps({
        "type": "record", "name": "Feat", "namespace": "v",
        "fields": [{"name": "k", "type": "string"}, {"name": "x_mean", "type": "double"},
                   {"name": "x_var", "type": "long"}]}))
    return tmp_path


def test_kernel_fields_missing_or_of_the_wrong_type(tmp_path: Path) -> None:
    t = Topology("v", schemas=schemas(tmp_path))
    obs = t.stream("obs", schema="v.Obs", key="k")
    feat = t.stream("feat", schema="v.Feat", key="k")
    t.add_node(kernel_node("f", obs, feat, key="k", time="ts", select=["k"],
                           features={"x": ("x", ewm(0.1)), "gap": (None, since_previous())}))
    found = t.validate()
    assert "kernel 'f': output field 'x_zscore' (double) is not a field of stream 'feat' " \
           "(v.Feat)" in found
    assert "kernel 'f': output field 'x_var' of stream 'feat' is long, the kernel writes " \
           "double" in found
    assert any("'gap_ms'" in p for p in found)
    assert not any("'x_mean'" in p for p in found)


def test_detector_signal_must_be_a_field_and_output_a_drift_stream(tmp_path: Path) -> None:
    t = Topology("v", schemas=schemas(tmp_path))
    obs = t.stream("obs", schema="v.Obs", key="k")
    out = t.stream("out", schema="v.Obs")
    t.add_node(detector_node("watch", obs, out, signal="y", detector=drift.ADWIN()))
    found = t.validate()
    assert any("detector 'watch': signal field 'y' is not a field of stream 'obs'" in p
               for p in found)
    assert any("it writes doa.DriftEvent records, stream 'out' has schema v.Obs" in p
               for p in found)
