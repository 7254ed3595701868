"""On a broker, with two partitions: a drift event resets only the learner of the partition
whose records fired it (its ``partition`` field); one read on another partition (as a keyed
drift stream delivers it) is not applied."""

from __future__ import annotations

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from tests.integration.helpers import drain, read_stream
from tests.test_learner import phishing
from tests.test_learner_drift import build, drift_event

pytestmark = pytest.mark.broker

BASE = 1_700_000_000_000  # record timestamps must be plausible epoch milliseconds
N = 60  # rows per partition


def test_a_drift_event_resets_only_the_learner_of_the_partition_that_fired_it(
        broker: str) -> None:
    t = build()
    prepare(t, broker)
    rows = phishing()[:2 * N]
    with Publisher("features", broker=broker, topology=t) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, partition=i // N, timestamp_ms=BASE + i)
    with Publisher("labels", broker=broker, topology=t) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, partition=i // N, timestamp_ms=BASE + i + 2)
    with Publisher("drift", broker=broker, topology=t) as pub:
        # both on drift partition 0: the first was fired by partition 1's records
        for fired_on in (1, 0):
            pub.send(drift_event(fired_on, BASE + 3 * N), partition=0,
                     timestamp_ms=BASE + 3 * N)
    report = drain(t, broker, 4 * N + 2)
    assert report.stats["model"].dead_letters == 0
    events = read_stream(broker, t, "models", idle_s=2)
    resets = [(e["partition"], e["from_version"]) for e in events if e["action"] == "reset"]
    assert resets == [(0, 1)]  # before: [(0, 1), (0, 2)], partition 0's model reset twice
