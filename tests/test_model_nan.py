"""A record with a NaN, infinite or null feature is never given to a model node's model, whatever
its format: an ONNX tree scored a NaN distance silently, scikit-learn's Ridge raised a
multi-line error naming no field. It is a dead letter with one line naming the node, the
feature and the record (stream, partition, offset), as a compiled learner's are; the rest of
its batch is scored. A model file of the other format than its extension says which it looks
like and the name it should have."""

from __future__ import annotations

import math
import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.linear_model import Ridge

from doa.model.artifacts import load_bytes
from doa.model.formats import ModelLoadError
from doa.testing import Harness
from tests.test_model_feature_names import DF, GBR, PRICE, TRAINED, pricing

RIDGE = Ridge().fit(DF[TRAINED].to_numpy(), PRICE)
GBR_ARRAY = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(
    DF[TRAINED].to_numpy(), PRICE)  # skl2onnx exports from an array
BAD = {2: ("distance_km", math.nan), 4: ("hour", math.inf), 5: ("distance_km", None),
       7: ("surge_hint", -math.inf)}


def onnx_bytes(model: Any) -> bytes:
    from skl2onnx import to_onnx

    return to_onnx(model, DF[TRAINED].to_numpy()[:1].astype(np.float32)).SerializeToString()


def model_file(tmp_path: Path, kind: str) -> tuple[str, Any]:
    """A model file of ``kind`` and the model that computes what it should predict."""
    if kind == "onnx-gbr":
        path = tmp_path / "gbr.onnx"
        path.write_bytes(onnx_bytes(GBR_ARRAY))
        return str(path), GBR_ARRAY
    path = tmp_path / f"{kind}.joblib"
    model = RIDGE if kind == "ridge" else GBR
    joblib.dump(model, path)
    return str(path), model


@pytest.mark.parametrize("kind", ["ridge", "gbr-names", "onnx-gbr"])
def test_a_nan_inf_or_null_feature_is_a_one_line_dead_letter_and_the_rest_is_scored(
        tmp_path: Path, kind: str) -> None:
    path, model = model_file(tmp_path, kind)
    rows = DF.astype({"id": int}).to_dict("records")[:10]
    for i, (field, value) in BAD.items():
        rows[i][field] = value
    h = Harness(pricing(tmp_path, path, TRAINED), batch_size=10)
    h.publish("rides", rows)
    h.run()
    letters = {d["offset"]: d for d in h.dead_letters}
    assert sorted(letters) == sorted(BAD)
    for i, (field, value) in BAD.items():
        shown = "null" if value is None else str(value)
        why = "" if value is None else (
            "\nwhere it came from: its writer sent it so (a NaN or infinite value "
            "in a node's input, or a kernel's output for a key with no value yet; `doa lineage "
            f"rides:0:{i}` shows the input)")
        assert (letters[i]["node"], letters[i]["error_type"], letters[i]["message"]) == (
            "price", "ValueError", f"model 'price': feature {field!r} is {shown} in rides:0:{i}: "
            "fix the value at its source; this record is a dead letter (a model node scores "
            f"finite numbers only){why}")
    good = [i for i in range(10) if i not in BAD]
    scored = {int(r["join"]): r["prediction"] for r in h.records("prices")}
    assert sorted(scored) == good
    expected = model.predict(DF[TRAINED].iloc[good] if kind == "gbr-names" else
                             DF[TRAINED].to_numpy()[good])
    assert np.allclose([scored[i] for i in good], expected, rtol=1e-5)


def test_an_onnx_file_named_joblib_says_so(tmp_path: Path) -> None:
    path = tmp_path / "gbr.joblib"
    path.write_bytes(onnx_bytes(GBR_ARRAY))
    with pytest.raises(ModelLoadError) as raised:
        Harness(pricing(tmp_path, str(path), TRAINED))
    assert str(raised.value) == (
        f"model node 'price': cannot load model file {str(path)!r}: it looks like an ONNX "
        "model (protobuf), not a pickle: name it gbr.onnx")
    with pytest.raises(ModelLoadError) as raised:  # doa model publish loads it so
        load_bytes(path.read_bytes(), "sklearn", node="price", version=2, features=TRAINED,
                   source=str(path))
    assert str(raised.value).endswith(
        f"(sklearn, {path.stat().st_size} bytes): it looks like an ONNX model (protobuf), not "
        "a pickle: name it gbr.onnx")


def test_a_pickle_named_onnx_says_so(tmp_path: Path) -> None:
    path = tmp_path / "ridge.onnx"
    path.write_bytes(pickle.dumps(RIDGE))
    with pytest.raises(ModelLoadError) as raised:
        Harness(pricing(tmp_path, str(path), TRAINED))
    assert str(raised.value) == (
        f"model node 'price': cannot load model file {str(path)!r}: it looks like a pickle "
        "(joblib), not an ONNX model: name it ridge.joblib")


class Counted:
    """A model that notes the rows of each call."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        self.calls.append(len(X))
        return X[:, 0]


def test_the_batch_is_retried_around_the_record_once(tmp_path: Path) -> None:
    model = Counted()
    rows = DF.astype({"id": int}).to_dict("records")[:10]
    rows[4]["hour"] = math.nan
    h = Harness(pricing(tmp_path, model, TRAINED), batch_size=10)
    h.publish("rides", rows)
    h.run()
    assert [d["offset"] for d in h.dead_letters] == [4]
    assert model.calls == [4, 5]  # the records before it, then the rest: never one by one
