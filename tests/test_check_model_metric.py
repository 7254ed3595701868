"""A model node's metric must fit its label field, and the declared metric wins on restart.

The walkthrough's case: ``Labels(..., label="fare", metric=metrics.Accuracy())`` on a model
node whose ``fare`` is a ``double``: ``doa check`` said ok, then Accuracy read 0.0 and every
outcome ``"correct": false``. ``doa check`` refuses a learner's metric of the wrong kind
already; now a model node's too (a classification metric on a number that is not a class, a
regression metric on a boolean, string or enum). Then the metric changed to ``MAE`` and the
node restarted from its snapshot, which still held an ``Accuracy``: it went on publishing
Accuracy. Now a restored metric of another class than the declared one is replaced by a fresh
one of the declared class, said once in the log.
"""

from __future__ import annotations

import json
import logging
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from doa.cli.app import cli
from doa.events import Event
from doa.testing import Harness
from doa.topology.loader import load_topology

RIDE = {"type": "record", "name": "RideRequest", "namespace": "rides", "fields": [
    {"name": "ride_id", "type": "string"}, {"name": "zone", "type": "string"},
    {"name": "distance_km", "type": "double"}]}

PRICING = '''
from river import metrics
from doa import Labels, Topology


class Tariff:
    def predict_batch(self, X):
        return (3 + 2 * X[:, 0]).round()


topology = Topology("pricing", schemas="schemas")
requests = topology.stream("ride_requests", schema="rides.RideRequest", key="ride_id")
fares = topology.stream("fares", schema="rides.Fare", key="ride_id")
for name, schema in (("prices", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                     ("metrics", "doa.Metric")):
    topology.stream(name, schema=schema)
topology.model("price", reads=requests, writes="prices", model=Tariff(),
               features=["distance_km"], join="ride_id", versions=None,
               labels=Labels(fares, label="fare", metric=metrics.{metric}(),
                             outcomes="outcomes", metrics="metrics", every=10))
'''


def project(root: Path, metric: str, fare: Any) -> Path:
    (root / "schemas").mkdir(parents=True, exist_ok=True)
    (root / "schemas" / "ride.avsc").write_text(json.dumps(RIDE))
    (root / "schemas" / "fare.avsc").write_text(json.dumps({
        "type": "record", "name": "Fare", "namespace": "rides",
        "fields": [{"name": "ride_id", "type": "string"}, {"name": "fare", "type": fare}]}))
    path = root / "pricing.py"
    path.write_text(PRICING.format(metric=metric))
    return path


def test_the_walkthrough_case_is_refused_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(project(tmp_path, "Accuracy", "double"))])
    assert result.exit_code == 1, result.output
    (line,) = result.stderr.strip().splitlines()
    assert line == ("problem: model 'price': metric Accuracy is a classification metric and "
                    "its label field 'fare' of stream 'fares' is double: every outcome would "
                    "count as wrong; give a regression metric (e.g. metrics.MAE())"), line
    # the fix passes; an integer label may be a class or a number: both kinds fit it
    for metric, fare in (("MAE", "double"), ("MAE", "long"), ("Accuracy", "long")):
        root = tmp_path / f"{metric}-{fare}"
        assert load_topology(str(project(root, metric, fare))).validate() == []


@pytest.mark.parametrize(("fare", "refused", "fits"), [
    (["null", "float"], "F1", "RMSE"),
    ("boolean", "MAE", "Accuracy"),
    ("string", "RMSE", "Accuracy"),
    ({"type": "enum", "name": "Band", "symbols": ["LOW", "HIGH"]}, "MAE", "F1"),
], ids=["float", "boolean", "string", "enum"])
def test_a_metric_of_the_other_kind_is_refused(tmp_path: Path, fare: Any, refused: str,
                                               fits: str) -> None:
    kind = "regression" if refused in ("MAE", "RMSE") else "classification"
    (line,) = load_topology(str(project(tmp_path / "refused", refused, fare))).validate()
    assert line.startswith(f"model 'price': metric {refused} is a {kind} metric and its "
                           "label field 'fare' of stream 'fares' is "), line
    assert load_topology(str(project(tmp_path / "fits", fits, fare))).validate() == []


def _batch(stream: str, records: list[dict[str, Any]], first: int) -> list[Event]:
    return [Event(r, stream=stream, partition=0, offset=first + i, timestamp=first + i)
            for i, r in enumerate(records)]


def test_the_declared_metric_wins_over_the_restored_one(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture
                                                        ) -> None:
    """A run with Accuracy (fares in whole units, a class or a number), its state as a
    snapshot restores it (pickled), then the node declared with MAE steps on from it."""
    rides = [{"ride_id": f"r{i}", "zone": "z", "distance_km": float(i % 7)} for i in range(40)]
    fares = [{"ride_id": f"r{i}", "fare": 3 + 2 * (i % 7) + (i % 3 == 0)} for i in range(40)]
    before = Harness(load_topology(str(project(tmp_path / "v1", "Accuracy", "long"))))
    before.publish("ride_requests", rides[:20], timestamps=range(20))
    before.publish("fares", fares[:20], timestamps=range(100, 120))
    before.run()
    assert {m["metric"] for m in before.records("metrics")} == {"Accuracy"}
    state = pickle.loads(pickle.dumps(before.state("price")[0]))

    node = load_topology(str(project(tmp_path / "v2", "MAE", "long"))).nodes["price"]
    node.spec.start()
    with caplog.at_level(logging.WARNING, logger="doa.model.labels"):
        state, out = node.step(state, _batch("ride_requests", rides[20:], 200))
        state, more = node.step(state, _batch("fares", fares[20:], 300))
    metrics = [o[2] for o in [*out, *more] if o[1] == "metrics"]  # (event, stream, record)
    assert [(m["metric"], m["labels"]) for m in metrics] == [("MAE", 10), ("MAE", 20)]
    assert metrics[-1]["value"] == pytest.approx(
        sum(abs(f["fare"] - (3 + 2 * r["distance_km"])) for r, f in
            zip(rides[20:], fares[20:], strict=True)) / 20)
    (said,) = [r.getMessage() for r in caplog.records]
    assert said == ("model 'price' partition 0: the topology declares metric MAE, its restored "
                    "state had another (v1: Accuracy of 20 labels): a fresh MAE starts now")
