"""``doa check`` refuses a labels stream keyed by another field than the records it labels.

The walkthrough's case: ``fares`` (the labels) keyed by ``ride_id``, ``ride_requests`` keyed
by ``zone``, two partitions each, and a model node pairing them on ``ride_id``: 206 of 400
labels waited on the partition of their key, where no prediction of theirs was, and came out
as ``unknown``; ``doa check`` said ok. A node pairs a label with its prediction within one
input partition, so both streams must be keyed by the same field (the drift-stream check of
learners refuses the same kind of mistake). Learners pair their labels the same way.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from doa.cli.app import cli
from doa.topology.loader import load_topology

RIDE = {"type": "record", "name": "RideRequest", "namespace": "rides", "fields": [
    {"name": "ride_id", "type": "string"}, {"name": "zone", "type": "string"},
    {"name": "hour", "type": "int"}, {"name": "distance_km", "type": "double"}]}
FARE = {"type": "record", "name": "Fare", "namespace": "rides", "fields": [
    {"name": "ride_id", "type": "string"}, {"name": "fare", "type": "double"}]}

PRICING = '''
from river import linear_model, metrics
from doa import Labels, Topology


class Tariff:
    def predict_batch(self, X):
        return 3.0 + 1.8 * X[:, 0]


topology = Topology("pricing", schemas="schemas")
requests = topology.stream("ride_requests", schema="rides.RideRequest", key={requests_key!r},
                           partitions={partitions})
fares = topology.stream("fares", schema="rides.Fare", key={fares_key!r},
                        partitions={fare_partitions})
for name, schema in (("prices", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                     ("unmatched", "doa.UnmatchedLabel"), ("learned", "doa.Prediction")):
    topology.stream(name, schema=schema, partitions={partitions})
topology.model("price", reads=requests, writes="prices", model=Tariff(),
               features=["distance_km"], join="ride_id", key="zone", versions=None,
               labels=Labels(fares, label="fare", metric=metrics.MAE(), outcomes="outcomes",
                             unmatched="unmatched"))
if {learner}:
    topology.learner("learn", features=requests, labels=fares, predictions="learned",
                     model=linear_model.LinearRegression(), metric=metrics.MAE(),
                     join="ride_id", label="fare", feature_fields=["distance_km"])
'''


def project(tmp_path: Path, requests_key: str | None, fares_key: str | None,
            partitions: int = 2, fare_partitions: int | None = None,
            learner: bool = False) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "ride.avsc").write_text(json.dumps(RIDE))
    (tmp_path / "schemas" / "fare.avsc").write_text(json.dumps(FARE))
    path = tmp_path / "pricing.py"
    path.write_text(PRICING.format(requests_key=requests_key, fares_key=fares_key,
                                   partitions=partitions, learner=learner,
                                   fare_partitions=fare_partitions or partitions))
    return path


def test_the_walkthrough_case_is_refused_in_one_line(tmp_path: Path) -> None:
    path = project(tmp_path, "zone", "ride_id")
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1, result.output
    assert "ok" not in result.stdout
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "problem: model 'price': its labels stream 'fares' is keyed by 'ride_id' and its input "
        "'ride_requests' by 'zone' (2 partitions): a label would wait on another partition "
        "than its prediction, and come out as unknown; key both streams by the same field "
        "('ride_requests' by 'ride_id')"), line


@pytest.mark.parametrize("learner", [False, True], ids=["model", "model-and-learner"])
def test_the_fix_passes_and_what_doa_cannot_tell_is_not_refused(tmp_path: Path,
                                                                learner: bool) -> None:
    """Refused as declared; keyed alike it passes, and so do one partition (every label
    meets its prediction) and an unkeyed stream (where its records go is its writer's
    choice); other partition counts are the partition check's one line, not two."""
    def found(name: str, requests: str | None, fares: str | None, partitions: int = 2,
              fare_partitions: int | None = None) -> list[str]:
        (tmp_path / name).mkdir()
        return load_topology(str(project(tmp_path / name, requests, fares, partitions,
                                         fare_partitions, learner))).validate()

    assert len(found("as_declared", "zone", "ride_id")) == 1 + learner
    assert found("keyed_alike", "ride_id", "ride_id") == []
    assert found("one_partition", "zone", "ride_id", 1) == []
    assert found("unkeyed_requests", None, "ride_id") == []
    assert found("unkeyed_fares", "zone", None) == []
    counts = found("counts", "zone", "ride_id", 2, 3)
    assert len(counts) == 1 + learner and all(
        "reads streams with different partition counts" in line for line in counts), counts


def test_a_learner_is_held_to_the_same_rule(tmp_path: Path) -> None:
    found = load_topology(str(project(tmp_path, "zone", "ride_id", learner=True))).validate()
    assert found == [
        "model 'price': its labels stream 'fares' is keyed by 'ride_id' and its input "
        "'ride_requests' by 'zone' (2 partitions): a label would wait on another partition "
        "than its prediction, and come out as unknown; key both streams by the same field "
        "('ride_requests' by 'ride_id')",
        "learner 'learn': its labels stream 'fares' is keyed by 'ride_id' and its features "
        "stream 'ride_requests' by 'zone' (2 partitions): a label would wait on another "
        "partition than its prediction, and come out as unknown; key both streams by the same "
        "field ('ride_requests' by 'ride_id')"]
