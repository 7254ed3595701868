"""Model nodes on a real broker: a scikit-learn pipeline and its ONNX export, side by side,
score a stream as the pipeline does in plain Python on the same rows.

The embedded broker only: the node's logic does not depend on the broker (the unit tests cover
it in the harness); this run checks the start hook loads the file in the worker, and the
outputs, versions and lineage headers as produced and read back through Kafka.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from doa import Topology
from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import lineage_of
from tests.integration.helpers import drain, read_stream
from tests.test_model_node import FEATURES, PIPELINE, ROWS, SCHEMAS, X

pytestmark = pytest.mark.broker
N = 600


@pytest.mark.brokers("tansu", reason="the node's logic is broker-independent; CI time")
def test_sklearn_and_onnx_nodes_score_as_plain_python(broker: str, tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    onnx_path = tmp_path / "phish.onnx"
    onnx_path.write_bytes(to_onnx(PIPELINE, X[:1].astype(np.float32)).SerializeToString())
    t = Topology("scoring", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish", partitions=2)
    for name in ("sk", "onnx"):
        t.stream(f"{name}_scores", schema="doa.Prediction")
    t.model("sk", reads="pages", writes="sk_scores", model=PIPELINE, features=FEATURES,
            join="id", version=3)
    t.model("onnx", reads="pages", writes="onnx_scores", model=str(onnx_path),
            features=FEATURES, join="id", version=4)
    prepare(t, broker)
    with Publisher("pages", broker=broker, topology=t) as pub:
        for i, row in enumerate(ROWS[:N]):
            pub.send(row, timestamp_ms=1000 + i)
    report = drain(t, broker, expected_in=2 * N, timeout=60)
    assert report is not None
    proba, labels = PIPELINE.predict_proba(X[:N]), PIPELINE.predict(X[:N])
    for name, version, tolerance in (("sk", 3, 1e-12), ("onnx", 4, 1e-5)):
        records = read_stream(broker, t, f"{name}_scores", expected=N)
        out = {int(r["join"]): r for r in records}
        assert sorted(out) == list(range(N))
        for i, r in out.items():
            assert r["prediction"] == labels[i] and r["model_version"] == version
            got = [r["probabilities"][str(c)] for c in PIPELINE.classes_]
            assert np.allclose(got, proba[i], rtol=0, atol=tolerance)
            assert r.timestamp == 1000 + i  # event time of the scored record
        assert {lineage_of(r.headers).model_version for r in records} == {version}  # type: ignore[union-attr]
