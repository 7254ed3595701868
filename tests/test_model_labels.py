"""Labels that come before their prediction, for a model node, in the in-memory harness.

A label whose record has not been scored yet is held (as the learner holds it), bounded by
``max_pending`` (``overflow``), a repeat reported as ``duplicate``, and reported as
``unknown`` once the inputs' event time passes it by ``label_wait_ms``. The reference is a
plain loop over the records and labels in the order the runtime merges them (timestamp,
records first on ties), under any batch size.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import metrics

from doa import Labels, Promote, Topology
from doa.learner import held
from doa.model.artifacts import chunk_records
from doa.testing import Harness
from tests.test_model_versions import SCHEMAS, rows

STEP = 10  # ms between two records


class Threshold:
    """Predicts age_of_domain > t."""

    def __init__(self, t: float) -> None:
        self.t = t

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] > self.t


def topology(wait_ms: int, max_pending: int, promote: Promote | None = None,
             unmatched: str | None = "unmatched") -> Topology:
    t = Topology("early", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish")
    t.stream("truth", schema="testing.PhishLabel")
    for name, schema in (("scores", "doa.Prediction"), ("shadow", "doa.Prediction"),
                         ("events", "doa.ModelEvent"), ("outcomes", "doa.Outcome"),
                         ("metrics", "doa.Metric"), ("unmatched", "doa.UnmatchedLabel")):
        t.stream(name, schema=schema)
    t.model("m", reads="pages", writes="scores", model=Threshold(60.0),
            features=["age_of_domain"], join="id", shadow="shadow", models="events",
            labels=Labels("truth", metric=metrics.Accuracy(), outcomes="outcomes",
                          metrics="metrics", unmatched=unmatched, every=7,
                          max_pending=max_pending, label_wait_ms=wait_ms),
            promote_when=promote)
    return t


def labels_for(n: int, delays: list[int], repeats: list[int]) -> list[tuple[int, int]]:
    """(id, timestamp) of the labels, in timestamp order (a label stream is time ordered)."""
    out = [(i, i * STEP + delays[i % len(delays)]) for i in range(n)]
    out += [(i % n, (i % n) * STEP + d) for i, d in repeats]
    return sorted(out, key=lambda x: x[1])


def run(n: int, labels: list[tuple[int, int]], *, wait_ms: int, max_pending: int,
        batch_size: int, promote: Promote | None = None, candidate: Any = None,
        unmatched: str | None = "unmatched") -> Harness:
    h = Harness(topology(wait_ms, max_pending, promote, unmatched), batch_size=batch_size)
    data = rows(n)
    h.publish("pages", data, timestamps=[i * STEP for i in range(n)])
    h.publish("truth", [{"id": i, "label": data[i]["age_of_domain"] > 50} for i, _ in labels],
              timestamps=[ts for _, ts in labels])
    if candidate is not None:
        h.publish("m.versions", chunk_records("m", 2, pickle.dumps(candidate), fmt="sklearn",
                                              chunk_bytes=10_000, publisher="", published=0,
                                              key=None, candidate=True), timestamps=[-1000])
    h.run()
    return h


def reference(n: int, labels: list[tuple[int, int]], *, wait_ms: int,
              max_pending: int) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    """Outcomes (join, prediction, label, delay) and unmatched (reason, join), a plain loop."""
    data = rows(n)
    # records first on ties; labels with equal timestamps keep their order in the stream (a
    # stable sort on time and kind only: sorting on the id too would reorder them, and which
    # held label is the oldest decides which one an overflow reports)
    merged = sorted([(i * STEP, 0, i) for i in range(n)] +
                    [(ts, 1, i) for i, ts in labels], key=lambda x: (x[0], x[1]))
    pending: OrderedDict[str, int] = OrderedDict()
    held: OrderedDict[str, int] = OrderedDict()
    outcomes, unmatched = [], []

    def match(join: str, ts: int) -> None:
        age = data[int(join)]["age_of_domain"]
        outcomes.append((join, age > 60.0, age > 50, ts - pending.pop(join)))

    for ts, kind, i in merged:
        join = str(i)
        if kind == 0:
            pending.pop(join, None)
            pending[join] = ts
            if len(pending) > max_pending:
                unmatched.append(("evicted", pending.popitem(last=False)[0]))
            if join in held:
                match(join, held.pop(join))
            while held and next(iter(held.values())) < ts - wait_ms:
                unmatched.append(("unknown", held.popitem(last=False)[0]))
        elif join in pending:
            match(join, ts)
        else:
            if join in held:
                unmatched.append(("duplicate", join))
                del held[join]
            held[join] = ts
            if len(held) > max_pending:
                unmatched.append(("overflow", held.popitem(last=False)[0]))
    return sorted(outcomes), sorted(unmatched)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70),
       delays=st.lists(st.integers(-25 * STEP, 3 * STEP), min_size=1, max_size=10),
       repeats=st.lists(st.tuples(st.integers(0, 59), st.integers(-5 * STEP, 5 * STEP)),
                        max_size=5),
       wait_ms=st.sampled_from([0, 5 * STEP, 12 * STEP, 1000 * STEP]),
       max_pending=st.sampled_from([2, 5, 1000]))
def test_early_labels_equal_a_plain_loop_under_any_batch_size(
        n: int, batch_size: int, delays: list[int], repeats: list[tuple[int, int]],
        wait_ms: int, max_pending: int) -> None:
    labels = labels_for(n, delays, repeats)
    h = run(n, labels, wait_ms=wait_ms, max_pending=max_pending, batch_size=batch_size)
    want_outcomes, want_unmatched = reference(n, labels, wait_ms=wait_ms,
                                              max_pending=max_pending)
    got = sorted((o["join"], o["prediction"], o["label"], o["delay_ms"])
                 for o in h.records("outcomes"))
    assert got == want_outcomes
    assert sorted((u["reason"], u["join"]) for u in h.records("unmatched")) == want_unmatched
    assert not h.dead_letters
    if want_outcomes:  # the running metric counts every outcome (accuracy: any order)
        last = h.records("metrics")[-1] if len(want_outcomes) >= 7 else None
        if last is not None:
            assert last["labels"] == len(want_outcomes) // 7 * 7


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), batch_size=st.integers(1, 70),
       delays=st.lists(st.integers(-25 * STEP, 3 * STEP), min_size=1, max_size=10),
       repeats=st.lists(st.tuples(st.integers(0, 59), st.integers(-5 * STEP, 5 * STEP)),
                        max_size=5),
       wait_ms=st.sampled_from([0, 5 * STEP, 12 * STEP]), max_pending=st.sampled_from([2, 5]))
def test_without_an_unmatched_stream_what_it_would_report_is_dropped_and_scoring_goes_on(
        n: int, batch_size: int, delays: list[int], repeats: list[tuple[int, int]],
        wait_ms: int, max_pending: int) -> None:
    """Walk 6: one label that matched nothing made every later record of its partition a
    dead letter (the report raised while the node processed that record, and the rollback
    kept the label held). Now the same outcomes as the plain loop, no dead letter, and each
    report the loop makes dropped with a line in the log."""
    labels = labels_for(n, delays, repeats)
    before = held._DROPPED.get("model node 'm'", 0)
    h = run(n, labels, wait_ms=wait_ms, max_pending=max_pending, batch_size=batch_size,
            unmatched=None)
    want_outcomes, want_unmatched = reference(n, labels, wait_ms=wait_ms,
                                              max_pending=max_pending)
    assert sorted((o["join"], o["prediction"], o["label"], o["delay_ms"])
                  for o in h.records("outcomes")) == want_outcomes
    assert len(h.records("scores")) == n
    assert not h.dead_letters
    assert held._DROPPED.get("model node 'm'", 0) - before == len(want_unmatched)


@pytest.mark.parametrize("batch_size", [1, 7, 500])
def test_labels_early_within_the_horizon_are_all_matched(batch_size: int) -> None:
    n, wait = 200, 30 * STEP
    # every label comes 1 to 29 records before its own record
    labels = labels_for(n, [-STEP * k for k in (1, 5, 29, 13, 2)], [])
    h = run(n, labels, wait_ms=wait, max_pending=1000, batch_size=batch_size)
    assert h.records("unmatched") == []
    outcomes = h.records("outcomes")
    assert sorted(int(o["join"]) for o in outcomes) == list(range(n))
    assert all(o["delay_ms"] < 0 for o in outcomes)
    data = rows(n)
    accuracy = np.mean([(r["age_of_domain"] > 60.0) == (r["age_of_domain"] > 50)
                        for r in data])
    last = h.records("metrics")[-1]
    assert last["labels"] == n // 7 * 7
    assert h.state("m")[0]["metrics"][1].get() == pytest.approx(accuracy)
    assert h.state("m")[0]["early"] == {}


def test_without_an_unmatched_stream_an_early_label_is_held_not_refused() -> None:
    t = Topology("early", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish")
    t.stream("truth", schema="testing.PhishLabel")
    t.stream("scores", schema="doa.Prediction")
    t.stream("outcomes", schema="doa.Outcome")
    t.model("m", reads="pages", writes="scores", model=Threshold(60.0),
            features=["age_of_domain"], join="id",
            labels=Labels("truth", metric=metrics.Accuracy(), outcomes="outcomes"))
    h = Harness(t, batch_size=1)
    data = rows(3)
    h.publish("truth", [{"id": i, "label": True} for i in range(3)], timestamps=[0, 1, 2])
    h.publish("pages", data, timestamps=[5, 6, 7])
    h.run()
    assert not h.dead_letters
    assert [int(o["join"]) for o in h.records("outcomes")] == [0, 1, 2]


@pytest.mark.parametrize("batch_size", [3, 64, 1000])
def test_a_race_decided_by_a_held_label_is_the_same_under_any_batch_size(
        batch_size: int) -> None:
    n = 300
    labels = labels_for(n, [-4 * STEP, 2 * STEP, -STEP, 0], [])
    policy = Promote(margin=0.01, after_labels=50)

    def streams(b: int) -> dict[str, list[Any]]:
        h = run(n, labels, wait_ms=100 * STEP, max_pending=1000, batch_size=b,
                promote=policy, candidate=Threshold(50.0))
        return {s: [(r.timestamp, dict(r)) for r in h.records(s)]
                for s in ("scores", "shadow", "events", "outcomes", "unmatched")}

    one, many = streams(1), streams(batch_size)
    assert [e["action"] for _, e in one["events"]] == ["candidate", "promoted"]
    for s in one:
        assert sorted(one[s], key=repr) == sorted(many[s], key=repr), s
    assert {r["model_version"] for _, r in one["scores"]} == {1, 2}
