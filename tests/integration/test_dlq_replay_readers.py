"""A replayed record is for the node whose dead letter it was: the other readers of its stream
(a sibling node, a Subscriber) do not get it a second time.

A walk had node ``page`` fail on 56 of 571 alerts; after the fix, ``doa dlq --replay``
re-published the 56 into ``alerts`` and the sibling node ``tally``, which had counted all 571,
counted 627.
"""

from __future__ import annotations

from typing import Any

import pytest

from doa import Topology
from doa.client import Publisher
from doa.dlq import replay
from doa.engines.launch import prepare
from tests.integration.conftest import ROOT
from tests.integration.helpers import drain, read_stream

pytestmark = pytest.mark.broker


def twins(name: str, fixed: bool) -> Topology:
    """``tally`` counts every event; ``picky`` fails on payload 'poison' unless ``fixed``."""
    t = Topology(name, schemas=ROOT / "tests" / "schemas")
    events = t.stream("events", schema="testing.Event", key="key", partitions=1)
    tallies = t.stream("tallies", schema="testing.Count", key="key", partitions=1)
    picks = t.stream("picks", schema="testing.Count", key="key", partitions=1)

    def counter(state: dict[str, int], batch: list[Any], picky: bool
                ) -> tuple[dict[str, int], list[Any]]:
        out = []
        for e in batch:
            if picky and not fixed and e["payload"] == "poison":
                raise ValueError("poison")
            state["n"] = state.get("n", 0) + 1
            out.append((e, {"key": e["key"], "n": e["n"], "count": state["n"], "total": 0}))
        return state, out

    t.node(reads=events, writes=tallies, name="tally", state=dict)(
        lambda s, b: counter(s, b, picky=False))
    t.node(reads=events, writes=picks, name="picky", state=dict)(
        lambda s, b: counter(s, b, picky=True))
    return t


@pytest.mark.brokers("tansu", reason="which node a replay is for is doa's, not the broker's")
def test_a_replay_reaches_the_node_that_failed_and_no_other_reader(broker: str,
                                                                   broker_kind: str) -> None:
    broken = twins("twins", fixed=False)
    prepare(broken, broker)
    with Publisher("events", broker=broker, topology=broken) as pub:
        for i in range(10):
            pub.send({"key": "k", "n": i, "payload": "poison" if i in (3, 7) else ""})
    drain(broken, broker, 20)
    assert len(read_stream(broker, broken, "twins.dlq", 2, idle_s=2)) == 2

    fixed = twins("twins", fixed=True)
    report = replay(broker, fixed)
    assert report.replayed == {"events": 2} and report.failed == []
    run = drain(fixed, broker, 4)  # the two replayed records, read by both nodes
    assert [run.stats[n].records_in for n in ("tally", "picky")] == [2, 2]

    tallies = read_stream(broker, fixed, "tallies", idle_s=2)
    picks = read_stream(broker, fixed, "picks", idle_s=2)
    assert [r["n"] for r in tallies] == list(range(10))  # was: 12, the replays counted again
    assert sorted(r["n"] for r in picks) == list(range(10))  # each once, the two at the end
    assert [r["count"] for r in picks] == list(range(1, 11))
    events = read_stream(broker, None, "events", idle_s=2)  # a service reading the stream
    assert sorted(e["n"] for e in events) == list(range(10))
