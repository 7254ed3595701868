"""On a real broker: a model node's record with a NaN, infinite or null feature is a one-line
dead letter naming the node, the feature and the record, and the rest is scored (an ONNX tree
used to score a NaN silently); ``doa model publish`` refuses, sending nothing, a model trained
on the node's features in another order (it printed "published") and an ONNX file named
``.joblib`` (it said ``KeyError: 8``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import joblib
import numpy as np
import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, drain, read_stream
from tests.test_model_feature_names import DF, GBR, PRICE, RIDE, TRAINED
from tests.test_model_nan import BAD, GBR_ARRAY, onnx_bytes

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the node's checks are broker-independent; "
                                                  "CI time")]

TOPOLOGY = '''
from doa import Topology

topology = Topology("pricing", schemas={schemas!r})
topology.stream("rides", schema="testing.Ride")
topology.stream("prices", schema="doa.Prediction", key=None)
topology.stream("prices.shadow", schema="doa.Prediction", key=None)
topology.model("price", reads="rides", writes="prices", model={model!r}, features={features!r},
               join="id", shadow="prices.shadow")
'''


def setup(tmp_path: Path, broker: str) -> tuple[str, object]:
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "ride.avsc").write_text(json.dumps(RIDE))
    model = tmp_path / "gbr.onnx"
    model.write_bytes(onnx_bytes(GBR_ARRAY))
    path = tmp_path / "pricing.py"
    path.write_text(TOPOLOGY.format(schemas=str(schemas), model=str(model), features=TRAINED))
    t = load_topology(str(path))
    prepare(t, broker)
    return str(path), t


def test_nan_inf_and_null_features_are_dead_letters_the_rest_is_scored(
        broker: str, tmp_path: Path) -> None:
    _, t = setup(tmp_path, broker)
    rows = DF.astype({"id": int}).to_dict("records")[:10]
    for i, (field, value) in BAD.items():
        rows[i][field] = value
    with Publisher("rides", broker=broker, topology=t) as pub:
        for i, row in enumerate(rows):
            pub.send(row, timestamp_ms=1000 + i)
    assert drain(t, broker, expected_in=10, timeout=60) is not None
    letters = {d["offset"]: d for d in read_stream(broker, t, "pricing.dlq", expected=len(BAD))}
    assert sorted(letters) == sorted(BAD)
    for i, (field, value) in BAD.items():
        message = letters[i]["message"]
        first, *where = message.split("\n")  # `doa run` shows the first line only: all of it
        assert (letters[i]["node"], letters[i]["stream"], len(where)) == (
            "price", "rides", 0 if value is None else 1)
        shown = "null" if value is None else str(value)
        assert first == (f"model 'price': feature {field!r} is {shown} in rides:0:{i}: fix the "
                         "value at its source; this record is a dead letter (a model node "
                         "scores finite numbers only)"), message
        assert value is None or f"`doa lineage rides:0:{i}` shows the input" in where[0]
    good = [i for i in range(10) if i not in BAD]
    scored = {int(r["join"]): r["prediction"] for r in read_stream(broker, t, "prices",
                                                                   expected=len(good))}
    assert sorted(scored) == good
    assert np.allclose([scored[i] for i in good],
                       GBR_ARRAY.predict(DF[TRAINED].to_numpy()[good]), rtol=1e-5)
    assert not any(math.isnan(scored[i]) for i in good)


def test_publish_refuses_another_column_order_and_a_misnamed_onnx_file(
        broker: str, tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    reordered = tmp_path / "gbr_df.joblib"
    trained = ["distance_km", "hour", "surge_hint"]
    joblib.dump(GBR.__class__(n_estimators=5).fit(DF[trained], PRICE), reordered)
    misnamed = tmp_path / "gbr_onnx.joblib"
    misnamed.write_bytes(onnx_bytes(GBR_ARRAY))
    errors = []
    for model in (reordered, misnamed):
        done = doa_command("model", "publish", path, "price", str(model), "--candidate",
                           "--broker", broker)
        err = done.stderr.decode()
        assert (done.returncode, done.stdout.decode(), err.count("\n")) == (1, "", 1), err
        errors.append(err.strip())
    assert errors == [
        f"error: model node 'price': version 2 from {reordered} (GradientBoostingRegressor) "
        "was trained on features in another order (distance_km, hour, surge_hint) than the "
        "node declares (hour, distance_km, surge_hint), and doa passes the columns by "
        "position: declare features=['distance_km', 'hour', 'surge_hint'] in the model's "
        "order, or retrain; nothing sent",
        f"error: model node 'price': cannot load version 2 from {misnamed} (sklearn, "
        f"{misnamed.stat().st_size} bytes): it looks like an ONNX model (protobuf), not a "
        "pickle: name it gbr_onnx.onnx; nothing sent"]
    assert read_stream(broker, t, "price.versions", idle_s=2) == []
