"""Model nodes in the in-memory harness, against the same model called in plain Python.

A scikit-learn pipeline trained on River's Phishing dataset, and its ONNX export (skl2onnx,
with and without ``zipmap``), score the same rows through ``topology.model``; their
predictions and probabilities must equal ``pipeline.predict`` / ``predict_proba`` on those
rows (ONNX computes in float32: to 1e-5). A frozen River model must equal its own
``predict_proba_one`` and not learn. Each batch is one model call.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from river import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

from doa import Topology
from doa.errors import TopologyError
from doa.events import lineage_of
from doa.model.formats import ModelLoadError, PredictBatch
from doa.testing import Harness

SCHEMAS = Path(__file__).parent / "schemas"
FEATURES = ["empty_server_form_handler", "popup_window", "https", "request_from_other_domain",
            "anchor_from_other_domain", "is_popular", "long_url", "age_of_domain", "ip_in_url"]


def phishing() -> tuple[list[dict[str, Any]], np.ndarray, np.ndarray]:
    rows = [{"id": i, **{k: float(x[k]) for k in FEATURES}}
            for i, (x, _) in enumerate(datasets.Phishing())]
    X = np.array([[r[k] for k in FEATURES] for r in rows])
    y = np.array([int(y) for _, y in datasets.Phishing()])
    return rows, X, y


ROWS, X, Y = phishing()
PIPELINE = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:800], Y[:800])


def scoring(model: Any, writes_schema: str = "doa.Prediction", **options: Any) -> Topology:
    t = Topology("scoring", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish", partitions=2)
    t.stream("scores", schema=writes_schema, key=None)
    t.model("phish", reads="pages", writes="scores", model=model, features=FEATURES,
            join="id", **options)
    return t


def run(t: Topology, batch_size: int = 64) -> Harness:
    h = Harness(t, batch_size=batch_size)
    h.publish("pages", ROWS, timestamps=range(len(ROWS)))
    h.run()
    return h


def by_id(h: Harness) -> dict[int, Any]:
    return {int(r["join"]): r for r in h.records("scores")}


def onnx_file(tmp_path: Path, zipmap: bool) -> Path:
    from skl2onnx import to_onnx

    onx = to_onnx(PIPELINE, X[:1].astype(np.float32), options={"zipmap": zipmap})
    path = tmp_path / f"phish-{zipmap}.onnx"
    path.write_bytes(onx.SerializeToString())
    return path


@pytest.mark.parametrize("source", ["object", "joblib", "pickle", "onnx", "onnx-no-zipmap"])
def test_pipeline_and_its_onnx_export_score_as_plain_python(source: str, tmp_path: Path) -> None:
    model: Any = PIPELINE
    if source == "joblib":
        model = tmp_path / "phish.joblib"
        joblib.dump(PIPELINE, model)
    elif source == "pickle":
        model = str(tmp_path / "phish.pkl")
        Path(model).write_bytes(pickle.dumps(PIPELINE))
    elif source.startswith("onnx"):
        model = onnx_file(tmp_path, zipmap=source == "onnx")
    options = {"classes": [0, 1]} if source == "onnx-no-zipmap" else {}
    out = by_id(run(scoring(model, **options), batch_size=97))
    assert sorted(out) == list(range(len(ROWS)))
    proba = PIPELINE.predict_proba(X)
    labels = PIPELINE.predict(X)
    tolerance = 1e-5 if source.startswith("onnx") else 1e-12
    for i, record in out.items():
        assert record["prediction"] == labels[i]
        got = [record["probabilities"][str(c)] for c in PIPELINE.classes_]
        assert np.allclose(got, proba[i], rtol=0, atol=tolerance)
        assert record["features"] == dict(zip(FEATURES, X[i], strict=True))
        assert record["model"] == "phish" and record["model_version"] == 1


def test_one_model_call_per_batch_on_the_declared_columns() -> None:
    calls: list[np.ndarray] = []

    class Recorder:
        def predict_batch(self, X: np.ndarray) -> np.ndarray:
            calls.append(X.copy())
            return X[:, 7] * 2  # age_of_domain

    assert isinstance(Recorder(), PredictBatch)
    t = scoring(Recorder())
    h = Harness(t, batch_size=100)
    h.publish("pages", ROWS[:1000], partition=0)
    h.run()
    assert [c.shape for c in calls] == [(100, len(FEATURES))] * 10
    assert np.array_equal(np.vstack(calls), X[:1000])
    assert [r["prediction"] for r in h.records("scores")] == list(X[:1000, 7] * 2)


def test_frozen_river_model_scores_as_its_own_predict_one_and_never_learns() -> None:
    from river import linear_model, preprocessing

    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    for x, y in datasets.Phishing():
        model.learn_one({k: float(x[k]) for k in FEATURES}, y)
    before = pickle.dumps(model)
    out = by_id(run(scoring(model)))
    assert pickle.dumps(model) == before
    for i, record in out.items():
        expected = model.predict_proba_one(dict(zip(FEATURES, X[i], strict=True)))
        assert record["prediction"] == max(expected, key=expected.__getitem__)
        for label, p in expected.items():
            assert record["probabilities"][str(label)] == pytest.approx(p, abs=1e-12)


def test_a_regressor_predicts_values() -> None:
    tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, Y * 3.5)
    out = by_id(run(scoring(tree)))
    assert [out[i]["prediction"] for i in range(len(ROWS))] == list(tree.predict(X))
    assert all(r["probabilities"] == {} for r in out.values())


def test_outputs_carry_the_model_version_in_record_and_lineage_header() -> None:
    h = run(scoring(PIPELINE, version=7))
    records = h.records("scores")
    assert {r["model_version"] for r in records} == {7}
    lineage = lineage_of(records[0].headers)
    assert lineage is not None and lineage.node == "phish"
    assert {lineage_of(r.headers).model_version for r in records} == {7}  # type: ignore[union-attr]


def test_output_function_writes_the_users_schema() -> None:
    t = scoring(PIPELINE, writes_schema="testing.PhishLabel",
                output=lambda event, p: {"id": event["id"], "label": p["prediction"] == 1})
    records = run(t).records("scores")
    out = {r["id"]: r["label"] for r in records}
    assert {lineage_of(r.headers).model_version for r in records} == {1}  # type: ignore[union-attr]
    assert out == {i: bool(y) for i, y in enumerate(PIPELINE.predict(X))}


def test_checks_name_the_missing_feature_and_the_wrong_output_schema() -> None:
    t = Topology("bad", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish")
    t.stream("scores", schema="testing.PhishLabel")
    t.model("phish", reads="pages", writes="scores", model=PIPELINE,
            features=[*FEATURES, "colour"], join="id")
    problems = t.validate()
    assert any("feature field 'colour' is not a field of stream 'pages'" in p for p in problems)
    assert any("writes doa.Prediction records, stream 'scores' has schema testing.PhishLabel"
               in p for p in problems)


def test_a_model_file_is_loaded_at_start_and_a_bad_one_names_node_and_file(
        tmp_path: Path) -> None:
    broken = tmp_path / "broken.joblib"
    broken.write_bytes(b"not a pickle")
    t = scoring(broken)  # declaring reads nothing: no load at import
    with pytest.raises(ModelLoadError, match=r"model node 'phish': cannot load model file "
                                             rf"'{broken}': "):
        Harness(t)
    with pytest.raises(TopologyError, match=rf"model 'phish': model file "
                                            rf"'{tmp_path / 'missing.onnx'}' does not exist"):
        Harness(scoring(tmp_path / "missing.onnx"))  # its check says so before it starts


def test_doa_check_names_the_node_and_the_model_file_that_does_not_exist(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from doa.cli.app import cli

    (tmp_path / "scoring_topology.py").write_text(
        "from tests.test_model_node import scoring\n"
        "topology = scoring('models/phish.onnx')\n")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check", "scoring_topology.py"])
    assert result.exit_code == 1, result.output
    assert result.stderr.splitlines() == [
        f"problem: model 'phish': model file 'models/phish.onnx' does not exist in the "
        f"topology's folder {Path(__file__).parent} (where relative paths resolve) nor in the "
        f"working directory {tmp_path}"]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "phish.onnx").write_bytes(b"")  # there: loading it is for the start
    result = CliRunner().invoke(cli, ["check", "scoring_topology.py"])  # with a deprecation
    assert result.exit_code == 0, result.output
