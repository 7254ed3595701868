"""doa check catches wrong fields of kernel and detector nodes before anything runs, and
warns of a custom step that mentions a stream it does not declare."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from river import drift

from doa import Topology
from doa.detector import detector_node
from doa.kernels import ewm, kernel_node, since_previous
from doa.node import Stream
from doa.topology.loader import load_topology
from doa.topology.validate import warnings


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


# -- a custom step that mentions a stream it does not declare: a warning ------------------------

REPO = Path(__file__).resolve().parent.parent
ROUTED = Stream("routed", "v.Obs")  # a module global a step may refer to


def routes(tmp_path: Path) -> Topology:
    """obs -> (custom nodes) with ``feat`` and ``routed`` declared; each test adds a node."""
    t = Topology("v", schemas=schemas(tmp_path))
    t.stream("obs", schema="v.Obs", key="k")
    t.stream("feat", schema="v.Feat", key="k")
    t.stream("routed", schema="v.Obs", key="k")
    return t


def test_a_step_naming_an_undeclared_stream_is_a_warning(tmp_path: Path) -> None:
    t = routes(tmp_path)

    @t.node(reads="obs", writes="routed")
    def sneaky(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, [(e, "feat", {"k": e["k"]}) for e in batch]

    assert t.validate() == [], "a warning, not a problem"
    (warning,) = warnings(t)
    where = t.nodes["sneaky"].where
    assert warning.startswith(f"node 'sneaky' ({where}) mentions stream 'feat', "), warning
    path, _, line = where.rpartition(":")
    assert Path(path).resolve() == Path(__file__).resolve()
    source = Path(__file__).read_text().splitlines()[int(line) - 1]
    assert source.strip().startswith("@t.node(reads=\"obs\""), source


def test_a_step_referring_to_an_undeclared_stream_object_is_a_warning(tmp_path: Path) -> None:
    t = routes(tmp_path)

    @t.node(reads="obs", writes="feat")
    def elsewhere(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, [(e, ROUTED, dict(e)) for e in batch]

    assert [w.partition(") ")[2] for w in warnings(t)] == [
        "mentions stream 'routed', which it does not declare in reads or writes: emitting to "
        "it fails at run time"]


def test_declared_streams_and_other_strings_are_no_warning(tmp_path: Path) -> None:
    t = routes(tmp_path)

    @t.node(reads="obs", writes=["feat", "routed"], name="routed.copy")
    def fine(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        label = "obs feat"  # not a stream name
        out = [(e, "feat", {"k": e["k"]}) for e in batch]
        return state, [*out, *[(e, ROUTED, dict(e, k=label)) for e in batch]]

    @t.node(reads="obs", name="v.dlq")  # a string in the decorator is not the step's code
    def quiet(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, []

    t.node(reads="obs", name="feat")(lambda state, batch: (state, []))  # the call: not code
    assert warnings(t) == []
    t.node(reads="obs", name="lam")(lambda state, batch: (state, [(e, "feat", e) for e in batch]))
    assert [w.partition(" (")[0] for w in warnings(t)] == ["node 'lam'"]


def test_ready_made_nodes_and_the_repo_topologies_have_no_warnings(tmp_path: Path) -> None:
    t = Topology("v", schemas=schemas(tmp_path))
    obs = t.stream("obs", schema="v.Obs", key="k")
    out = t.stream("drift", schema="doa.DriftEvent")
    t.add_node(detector_node("watch", obs, out, signal="x", detector=drift.ADWIN()))
    assert warnings(t) == []
    for spec in ("topologies/sensors.py", "topologies/fraud.py", "tests/topologies/counting.py",
                 "tests/topologies/learning.py"):
        assert warnings(load_topology(str(REPO / spec))) == [], spec
