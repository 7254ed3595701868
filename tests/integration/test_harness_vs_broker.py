"""The in-memory harness and the broker runtime agree: same inputs, same alerts, same dead letters.

The example topology ``topologies/sensors.py`` gets its demo source (3000 readings with
malformed payloads, plus truncated encodings of some readings) through a Publisher on the real
broker and, in the same per-partition order, through :class:`doa.testing.Harness`. Output ids
are derived from the input's coordinates, so both must produce the same alert ids with equal
values, and dead letters at the same coordinates with the same error.
"""

from __future__ import annotations

from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import key_bytes, lineage_of, partition_for
from doa.testing import Harness
from doa.topology.loader import load
from tests.integration.conftest import ROOT
from tests.integration.helpers import drain, raw_records, read_stream

pytestmark = pytest.mark.broker

SENSORS = str(ROOT / "topologies" / "sensors.py")
LETTER_FIELDS = ("stream", "partition", "offset", "node", "error_type", "message", "key", "raw")


def _inputs(module: Any, topology: Any, n: int) -> list[dict[str, Any] | bytes]:
    """The demo source's readings, and after every 400th a truncated copy of its encoding."""
    codec = topology.codec("readings")
    items: list[dict[str, Any] | bytes] = []
    for i, (stream, item) in enumerate(module.demo_source(n)):
        assert stream == "readings"
        items.append(item)
        if isinstance(item, dict) and i % 400 == 17:
            items.append(codec.encode(item)[:-3])
    return items


def test_harness_and_broker_produce_the_same_alerts_and_dead_letters(broker: str) -> None:
    module, topology = load(SENSORS)
    items = _inputs(module, topology, 3000)
    bad = sum(isinstance(i, bytes) for i in items)
    assert bad >= 8

    prepare(topology, broker)
    with Publisher("readings", broker=broker, topology=topology) as pub:
        for item in items:
            if isinstance(item, bytes):
                pub.send_raw(item)
            else:
                pub.send(item)
    report = drain(topology, broker, len(items), timeout=60)
    assert report.stats["flag_spikes"].records_in == len(items)
    assert report.stats["flag_spikes"].dead_letters == bad

    # Feed the harness the same records, each to the partition the broker put it in and in the
    # broker's offset order: every partition's log then holds the broker's records. (Within a
    # partition that is the publishing order; a partition's state never sees another's.)
    on_broker = raw_records(broker, "readings")
    assert len(on_broker) == len(items)
    _, h_topology = load(SENSORS)
    harness = Harness(h_topology)
    codec = h_topology.codec("readings")
    readings = {codec.encode(i): i for i in items if isinstance(i, dict)}
    assert len(readings) == len(items) - bad
    for p, o in sorted(on_broker):
        value = on_broker[(p, o)]
        item = readings.get(value, value)
        if isinstance(item, dict):
            assert p == partition_for(key_bytes(item["sensor_id"]), 4)
        assert o == len(harness.logs["readings"][p])
        harness.publish("readings", [item], partition=p)
    assert sorted(v for v in on_broker.values() if v not in readings) == sorted(
        i for i in items if isinstance(i, bytes))
    harness.run()

    h_alerts = {e.id: (e.partition, dict(e)) for e in harness.records("alerts")}
    b_alerts_list = read_stream(broker, topology, "alerts", len(h_alerts), idle_s=2)
    b_alerts = {}
    for e in b_alerts_list:
        lin = lineage_of(e.headers)
        assert lin is not None and lin.id == e.id
        b_alerts[lin.id] = (e.partition, dict(e))
    assert len(b_alerts_list) == len(b_alerts), "an alert was written twice"
    assert len(h_alerts) >= 5
    assert b_alerts.keys() == h_alerts.keys()
    assert b_alerts == h_alerts

    def letters(events: list[Any]) -> list[tuple[Any, ...]]:
        return sorted(tuple(d[f] for f in LETTER_FIELDS) for d in events)

    h_letters = letters(harness.dead_letters)
    b_letters = letters(read_stream(broker, topology, "sensors.dlq", bad, idle_s=2))
    assert len(h_letters) == bad
    assert b_letters == h_letters
    kinds = {d[4] for d in h_letters}
    assert "DecodeError/bad-marker" in kinds and len(kinds) >= 2, kinds
