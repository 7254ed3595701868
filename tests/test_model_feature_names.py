"""A model trained on named columns in another order than its node declares its features is
refused, not run: doa passes the columns by position, so it would score each column as
another feature (a ride's distance as its hour) without a word. Refused when the node loads
it, by ``doa check`` (the topology's own model) and by ``doa model publish`` (nothing sent);
a model trained on an array (no names) is not checked, and one trained on the node's names in
its order scores as scikit-learn does on a DataFrame, without sklearn's warning per batch."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import doa.cli.model.publish as publish
from doa import Topology
from doa.errors import TopologyError
from doa.model.artifacts import load_bytes
from doa.model.formats import ModelLoadError
from doa.testing import Harness

TRAINED = ["hour", "distance_km", "surge_hint"]  # the order the model was trained in
DECLARED = ["distance_km", "hour", "surge_hint"]  # the order the node declares
RIDE = {"type": "record", "name": "Ride", "namespace": "testing", "fields": [
    {"name": "id", "type": "long"}, {"name": "hour", "type": "double"},
    {"name": "distance_km", "type": ["null", "double"]}, {"name": "surge_hint", "type": "double"}]}


def rides(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame({"id": np.arange(n), "hour": rng.integers(0, 24, n).astype(float),
                         "distance_km": rng.uniform(0.5, 30.0, n),
                         "surge_hint": rng.uniform(0.0, 1.0, n)})


DF = rides()
PRICE = 3.0 + 2.0 * DF["distance_km"] + 0.1 * DF["hour"] * DF["surge_hint"]
GBR = GradientBoostingRegressor(n_estimators=20, random_state=0).fit(DF[TRAINED], PRICE)


def schemas(tmp_path: Path) -> Path:
    folder = tmp_path / "schemas"
    folder.mkdir(exist_ok=True)
    (folder / "ride.avsc").write_text(json.dumps(RIDE))
    return folder


def pricing(tmp_path: Path, model: Any, features: list[str]) -> Topology:
    t = Topology("pricing", schemas=schemas(tmp_path))
    t.stream("rides", schema="testing.Ride")
    t.stream("prices", schema="doa.Prediction", key=None)
    t.model("price", reads="rides", writes="prices", model=model, features=features, join="id")
    return t


def refusal(what: str, kind: str = "GradientBoostingRegressor") -> str:
    return (f"model node 'price': {what} ({kind}) was trained on features in another order "
            "(hour, distance_km, surge_hint) than the node declares (distance_km, hour, "
            "surge_hint), and doa passes the columns by position: declare "
            "features=['hour', 'distance_km', 'surge_hint'] in the model's order, or retrain")


def test_doa_check_refuses_the_topologys_model_file_in_another_order(tmp_path: Path) -> None:
    path = tmp_path / "gbr_df.joblib"
    joblib.dump(GBR, path)
    t = pricing(tmp_path, str(path), DECLARED)
    assert t.validate() == [refusal(f"model file {str(path)!r}")]
    with pytest.raises(TopologyError):  # so `doa run` and the harness do not start it
        Harness(t)
    plain = GradientBoostingRegressor(n_estimators=5).fit(DF[TRAINED].to_numpy(), PRICE)
    assert pricing(tmp_path, plain, DECLARED).validate() == []  # no names: not checked


def test_a_pipeline_with_other_names_is_refused_too(tmp_path: Path) -> None:
    pipeline = make_pipeline(StandardScaler(), GradientBoostingRegressor(n_estimators=5))
    pipeline.fit(DF[TRAINED].rename(columns={"surge_hint": "surge"}), PRICE)
    problems = pricing(tmp_path, pipeline, TRAINED).validate()
    assert problems == [
        "model node 'price': model (Pipeline) was trained on features of other names (hour, "
        "distance_km, surge) than the node declares (hour, distance_km, surge_hint), and doa "
        "passes the columns by position: declare features=['hour', 'distance_km', 'surge'] in "
        "the model's order, or retrain"]


def test_the_node_refuses_a_published_version_in_another_order() -> None:
    data = joblib_bytes(GBR)
    with pytest.raises(ModelLoadError) as raised:
        load_bytes(data, "sklearn", node="price", version=4, features=DECLARED,
                   source="gbr_df.joblib")
    assert str(raised.value) == refusal("version 4 from gbr_df.joblib")
    load_bytes(data, "sklearn", node="price", version=4, features=TRAINED)  # its order: fine


def test_publish_refuses_it_and_sends_nothing(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "gbr_df.joblib"
    joblib.dump(GBR, path)
    sent: list[Any] = []
    monkeypatch.setattr(publish, "read_all", lambda broker, t, stream: [])  # no version yet
    monkeypatch.setattr(publish, "send_all", lambda *args: sent.append(args))
    t = pricing(tmp_path, GBR.__class__(n_estimators=1).fit(DF[DECLARED], PRICE), DECLARED)
    with pytest.raises(ModelLoadError) as raised:
        publish.publish_version(t, "price", path, broker="unused:9092", candidate=True)
    assert str(raised.value) == refusal(f"version 2 from {path}") + "; nothing sent"
    assert sent == []


def test_the_models_own_order_scores_as_sklearn_on_a_dataframe(tmp_path: Path) -> None:
    path = tmp_path / "gbr_df.joblib"
    joblib.dump(GBR, path)
    h = Harness(pricing(tmp_path, str(path), TRAINED))
    h.publish("rides", DF.astype({"id": int}).to_dict("records")[:50])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # sklearn's "X does not have valid feature names"
        h.run()
    got = [r["prediction"] for r in sorted(h.records("prices"), key=lambda r: int(r["join"]))]
    assert got == GBR.predict(DF[TRAINED][:50]).tolist()


def joblib_bytes(model: object) -> bytes:
    import io

    buffer = io.BytesIO()
    joblib.dump(model, buffer)
    return buffer.getvalue()
