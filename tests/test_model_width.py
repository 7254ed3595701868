"""A model node refuses, at start, a model that says it expects another number of input
features than the node declares (scikit-learn's ``n_features_in_``, an ONNX input's static
width); a model that does not say is not checked. ``doa model publish`` refuses the same
(tests/integration/test_model_cli_errors.py)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.tree import DecisionTreeRegressor

from doa.model.artifacts import load_bytes
from doa.model.formats import ModelLoadError, file_format, input_width, load
from doa.testing import Harness
from tests.test_model_node import FEATURES, PIPELINE, X, scoring
from tests.test_model_versions import Scaled

FIVE = DecisionTreeRegressor().fit(np.arange(10.0).reshape(2, 5), [1.0, 2.0])
WIDTH = len(FEATURES)


def test_a_model_file_of_another_width_is_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "five.joblib"
    joblib.dump(FIVE, path)
    with pytest.raises(ModelLoadError) as raised:
        Harness(scoring(str(path)))
    assert str(raised.value) == (
        f"model node 'phish': model file {str(path)!r} (DecisionTreeRegressor) expects 5 input "
        f"features, the node declares {WIDTH} ({', '.join(FEATURES)})")
    with pytest.raises(ModelLoadError, match=r"^model node 'phish': model "
                                             r"\(DecisionTreeRegressor\) expects 5 input"):
        Harness(scoring(FIVE))


def test_an_onnx_model_of_another_static_width_is_refused(tmp_path: Path) -> None:
    from skl2onnx import to_onnx

    path = tmp_path / "phish.onnx"
    path.write_bytes(to_onnx(PIPELINE, X[:1].astype(np.float32)).SerializeToString())
    assert input_width(load(str(path), node="n", features=FEATURES).session) == WIDTH  # type: ignore[attr-defined]
    with pytest.raises(ModelLoadError, match=rf"^model node 'n': model file '{path}' "
                                             rf"\(InferenceSession\) expects {WIDTH} input "
                                             "features, the node declares 2 \\(a, b\\)$"):
        load(str(path), node="n", features=["a", "b"])


def test_a_model_that_does_not_say_its_width_is_not_checked() -> None:
    assert input_width(Scaled(1.0)) is None
    Harness(scoring(Scaled(1.0))).run()


def test_a_published_version_names_its_file_and_both_counts() -> None:
    with pytest.raises(ModelLoadError) as raised:
        load_bytes(joblib_bytes(FIVE), "sklearn", node="payout", version=3, features=["a"],
                   source="five.joblib")
    assert str(raised.value) == ("model node 'payout': version 3 from five.joblib "
                                 "(DecisionTreeRegressor) expects 5 input features, the node "
                                 "declares 1 (a)")
    with pytest.raises(ModelLoadError, match=r"^model node 'payout': unknown model format "
                                             r"'\.txt' for model\.txt \(expected \.onnx, "
                                             r"\.joblib, \.pkl, \.pickle\)$"):
        file_format("model.txt", node="payout")


def joblib_bytes(model: object) -> bytes:
    import io

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()
