"""A drift event resets (or rolls back) only the learner of the partition that fired it.

The walkthrough's case: a drift stream keyed by ``node`` on two partitions put every drift
event on partition 0, whose learner reset on partition 1's errors while partition 1's never
did. ``doa check`` refuses that stream (tests/test_learner_checks.py); here each learner
applies a drift event only if its ``partition`` field is the learner's own partition.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from river import drift, linear_model, metrics

from doa import Topology
from doa.testing import Harness
from tests.test_learner import SCHEMAS, phishing

PARTITIONS = 2


def build(detector: bool = False) -> Topology:
    """Two partitions; the drift stream keyless (a drift event stays on its input's
    partition); with ``detector``, ADWIN on the outcomes' errors writes it."""
    t = Topology("drifting", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                         ("models", "doa.ModelEvent"), ("drift", "doa.DriftEvent")):
        t.stream(name, schema=schema, partitions=PARTITIONS)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              outcomes="outcomes", models="models", drift="drift", on_drift="reset",
              model=linear_model.LogisticRegression(), metric=metrics.Accuracy(), join="id",
              label="label")
    if detector:
        t.detector("watch", reads="outcomes", writes="drift", signal="error",
                   detector=drift.PageHinkley(mode="up", threshold=5, min_instances=10))
    return t


def drift_event(fired_on: int, ts: int) -> dict[str, Any]:
    return {"detector": "ADWIN", "signal": "error", "node": "watch", "key": None,
            "model_version": 0, "position": 7, "stream": "outcomes", "partition": fired_on,
            "offset": 0, "timestamp": ts, "statistics": {}}


def feed(h: Harness, partition: int, rows: list[tuple[dict[str, float], bool]],
         start: int) -> None:
    h.publish("features", [{"id": start + i, **x} for i, (x, _) in enumerate(rows)],
              partition=partition, timestamps=[start + i for i in range(len(rows))])
    h.publish("labels", [{"id": start + i, "label": y} for i, (_, y) in enumerate(rows)],
              partition=partition, timestamps=[start + i + 2 for i in range(len(rows))])


def resets(h: Harness) -> list[tuple[int, int]]:
    """(the learner's partition, its version after) of every reset."""
    return [(m["partition"], m["version"]) for m in h.records("models")
            if m["action"] == "reset"]


def test_a_drift_event_read_on_another_partition_is_not_applied_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    rows = phishing()[:100]
    h = Harness(build())
    feed(h, 0, rows[:50], 0)
    feed(h, 1, rows[50:], 1000)
    # both on drift partition 0 (as a keyed stream put them): one fired by partition 1's
    # records, one by partition 0's
    h.publish("drift", [drift_event(1, 60), drift_event(0, 61)], partition=0,
              timestamps=[60, 61])
    with caplog.at_level(logging.WARNING, logger="doa.learner"):
        h.run()
    assert resets(h) == [(0, 2)]  # before: [(0, 2), (0, 3)], both on partition 0's model
    [told] = [r.getMessage() for r in caplog.records if r.name.startswith("doa.learner")]
    assert told.startswith("learner 'model' partition 0: drift event at stream 'drift' "
                           "partition 0 offset 0 (ADWIN on error fired at position 7) was "
                           "fired by partition 1's records; not applied here")
    assert h.state("model")[1]["version"] == 1


def test_with_a_keyless_drift_stream_each_partition_resets_on_its_own_errors() -> None:
    """Partition 1's labels flip half-way: its detector fires there, and every drift event
    resets the learner of the partition that fired it, once."""
    rows = phishing()[:600]
    h = Harness(build(detector=True))
    feed(h, 0, rows, 0)
    feed(h, 1, [(x, y if i < 300 else not y) for i, (x, y) in enumerate(rows)], 0)
    h.run()
    fired = [(d.partition, d["partition"]) for d in h.records("drift")]
    assert all(read == made for read, made in fired) and (1, 1) in fired
    assert sorted(p for p, _ in resets(h)) == sorted(p for p, _ in fired)
