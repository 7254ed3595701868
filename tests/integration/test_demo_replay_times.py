"""A live demo replay moves every record's timestamp by one shift: the records keep their
gaps in event time. Walk 7: the first record was shifted before the replay waited for the
nodes to take it and the rest after, so its gap to the others (and a label's ``delay_ms``)
was off by that wait (3,069 ms for reading 0, 3,000 for every other)."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from doa.demo.replay import replay
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import read_stream

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the shift is the demo source's own")]


def test_a_live_replay_keeps_the_gaps_between_event_times(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    times = [10_000, 10_100, 10_300, 10_350]
    items = [("events", {"key": "k", "n": i, "payload": ""}, t) for i, t in enumerate(times)]
    ready, stop = threading.Event(), threading.Event()
    threading.Timer(0.5, ready.set).start()  # the nodes take the first record after 0.5 s
    published = replay(broker, items, lead_ms=2_000, ready=ready, stop=stop,
                       sent=SimpleNamespace(value=0), waiting=SimpleNamespace(value=0))
    assert published == {"events": 4}
    got = sorted(read_stream(broker, topology, "events", expected=4), key=lambda e: e["n"])
    assert [e.timestamp - got[0].timestamp for e in got] == [0, 100, 300, 350]
