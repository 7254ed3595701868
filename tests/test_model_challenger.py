"""Shadow and challenger in the in-memory harness: a candidate version scores the same
records into the shadow stream only; both versions are scored on the same delayed labels;
the Promote policy promotes a candidate better by construction after exactly the stated
number of labels, and rejects a worse one. The references are plain loops over the rows.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from river import metrics

from doa import Topology
from doa.model import versions
from doa.model.artifacts import chunk_records
from doa.model.labels import Labels, Promote
from doa.testing import Harness
from tests.test_model_versions import SCHEMAS, rows

N = 400
DELAY = 20
AT = 50  # the candidate is published at this timestamp
AFTER = 100


class Threshold:
    """Predicts age_of_domain > t; the labels below are age_of_domain > 50."""

    def __init__(self, t: float) -> None:
        self.t = t

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] > self.t


def topology(promote: Promote | None) -> Topology:
    t = Topology("challenger", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish")
    t.stream("truth", schema="testing.PhishLabel")
    for name, schema in (("scores", "doa.Prediction"), ("shadow", "doa.Prediction"),
                         ("events", "doa.ModelEvent"), ("outcomes", "doa.Outcome"),
                         ("metrics", "doa.Metric")):
        t.stream(name, schema=schema)
    t.model("m", reads="pages", writes="scores", model=Threshold(80.0),
            features=["age_of_domain"], join="id", shadow="shadow", models="events",
            labels=Labels("truth", metric=metrics.Accuracy(), outcomes="outcomes",
                          metrics="metrics", every=50),
            promote_when=promote)
    return t


def race(candidate: Threshold, promote: Promote | None, batch_size: int = 64) -> Harness:
    h = Harness(topology(promote), batch_size=batch_size)
    data = rows(N)
    h.publish("pages", data, timestamps=range(N))
    h.publish("truth", [{"id": r["id"], "label": r["age_of_domain"] > 50} for r in data],
              timestamps=[i + DELAY for i in range(N)])
    h.publish("m.versions", chunk_records("m", 2, pickle.dumps(candidate), fmt="sklearn",
                                          chunk_bytes=100, publisher="", published=0,
                                          key=None, candidate=True),
              timestamps=[AT] * 10)
    h.run()
    return h


def accuracy(t: float, ids: range) -> float:
    data = rows(N)
    return float(np.mean([(data[i]["age_of_domain"] > t) == (data[i]["age_of_domain"] > 50)
                          for i in ids]))


@pytest.mark.parametrize("batch_size", [1, 33, 1000])
def test_a_better_challenger_is_promoted_after_the_stated_labels(batch_size: int) -> None:
    h = race(Threshold(50.0), Promote(margin=0.02, after_labels=AFTER), batch_size)
    # shared labels are those of records AT.. (both scored them); the AFTER-th is record
    # AT + AFTER - 1's, at timestamp AT + AFTER - 1 + DELAY; records up to that time (inputs
    # before labels on ties) are the old live version's
    decided = AT + AFTER - 1 + DELAY
    [candidate, promoted] = h.records("events")
    assert (candidate["action"], candidate["version"]) == ("candidate", 2)
    assert (promoted["action"], promoted["version"], promoted["from_version"]) == \
        ("promoted", 2, 1)
    assert promoted.timestamp == decided and promoted["labels"] == AFTER
    live = {int(r["join"]): r for r in h.records("scores")}
    assert sorted(live) == list(range(N))
    assert all(r["model_version"] == (1 if i <= decided else 2) for i, r in live.items())
    shadow = {int(r["join"]): r["model_version"] for r in h.records("shadow")}
    assert shadow == dict.fromkeys(range(AT, decided + 1), 2)
    assert f"{accuracy(50.0, range(AT, AT + AFTER)):.4f} (v2) vs " \
           f"{accuracy(80.0, range(AT, AT + AFTER)):.4f} (v1) over {AFTER}" in promoted["reason"]
    # outcomes are the live version's predictions only, each with the version that made it
    outcomes = {int(o["join"]): o["model_version"] for o in h.records("outcomes")}
    assert outcomes == {i: live[i]["model_version"] for i in range(N)}


def test_a_worse_challenger_is_rejected_and_stops_shadowing() -> None:
    h = race(Threshold(95.0), Promote(margin=0.0, after_labels=AFTER))
    decided = AT + AFTER - 1 + DELAY
    [_, rejected] = h.records("events")
    assert (rejected["action"], rejected["version"], rejected["from_version"]) == \
        ("rejected", 2, 1)
    assert {r["model_version"] for r in h.records("scores")} == {1}
    assert sorted(int(r["join"]) for r in h.records("shadow")) == list(range(AT, decided + 1))
    assert h.state("m")[0]["candidate"] is None


def test_better_but_not_by_the_margin_is_rejected() -> None:
    h = race(Threshold(70.0), Promote(margin=0.5, after_labels=AFTER))
    assert [e["action"] for e in h.records("events")] == ["candidate", "rejected"]


def test_without_a_policy_the_candidate_waits_for_a_promote_command() -> None:
    h = race(Threshold(50.0), None)
    assert [e["action"] for e in h.records("events")] == ["candidate"]
    assert {r["model_version"] for r in h.records("scores")} == {1}
    assert len(h.records("shadow")) == N - AT
    # the metric records of the race: both versions on the same labels, as a plain loop
    last = {m["model_version"]: m for m in h.records("metrics")}
    assert last[2]["labels"] == last[1]["labels"] == N - AT
    assert last[2]["value"] == pytest.approx(accuracy(50.0, range(AT, N)))
    assert last[1]["value"] == pytest.approx(accuracy(80.0, range(AT, N)))
    h.publish("m.versions", [versions.command("m", "promote")], timestamps=[N])
    h.publish("pages", rows(N + 5)[N:], timestamps=range(N, N + 5))
    h.run()
    assert [e["action"] for e in h.records("events")][-1] == "promoted"
    assert [r["model_version"] for r in h.records("scores")][-5:] == [2] * 5


def test_the_live_output_never_carries_a_shadow_prediction() -> None:
    h = race(Threshold(50.0), None)
    data = rows(N)
    for r in h.records("scores"):
        assert r["prediction"] == (data[int(r["join"])]["age_of_domain"] > 80.0)
    for r in h.records("shadow"):
        assert r["prediction"] == (data[int(r["join"])]["age_of_domain"] > 50.0)
