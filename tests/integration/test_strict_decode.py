"""Malformed Avro bodies on a real broker: each is a dead letter with its reason, never state.

The bodies fastavro alone would have decoded (a negative union index wraps around to a real
branch; an overlong varint reads as some number) are published raw to ``readings`` of
``topologies/sensors.py`` among valid readings. The node's per-sensor count, carried in each
alert, shows that none of them reached the state.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.helpers import drain, raw_records, read_stream

pytestmark = pytest.mark.broker

SENSORS = str(Path(__file__).resolve().parents[2] / "topologies" / "sensors.py")
SENSORS_N = 4
VALID_PER_SENSOR = 20
# A reading body: sensor_id "sensor-0N" (length 9, zig-zag 0x12), ts (6 bytes), value, lat,
# lon (8 bytes each), then unit: union index 0 (null) as the last byte.
MALFORMED: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "negative union index -1": ("union-index", lambda p: p[:-1] + b"\x01"),
    "negative union index -2": ("union-index", lambda p: p[:-1] + b"\x03"),
    "union index too large": ("union-index", lambda p: p[:-1] + b"\x04"),
    "overlong varint": ("varint", lambda p: p[:20] + b"\xff" * 10 + b"\x01" + p[26:]),
    "truncated varint": ("truncated", lambda p: p[:23]),
    "trailing bytes": ("trailing-bytes", lambda p: p + b"\x00"),
    "invalid UTF-8": ("utf8", lambda p: p[:11] + b"\xff" + p[12:]),
    "truncated body": ("truncated", lambda p: p[:-10]),
}


def reading(sensor: int, i: int, value: float) -> dict[str, object]:
    return {"sensor_id": f"sensor-{sensor:02d}", "ts": 1_700_000_000_000 + i, "value": value,
            "location": {"lat": 52.0, "lon": 4.3}, "unit": None}


def test_malformed_bodies_are_dead_letters_with_their_reason(broker: str) -> None:
    topology = load_topology(SENSORS)
    prepare(topology, broker)
    codec = topology.codec("readings")
    template = codec.encode(reading(0, 0, 20.0))
    assert template[10:20] == b"\x12sensor-00" and template[-1:] == b"\x00"
    bad: list[tuple[bytes, str]] = []  # two may be the same bytes (a cut varint)
    with Publisher("readings", broker=broker, topology=topology) as pub:
        for s in range(SENSORS_N):
            key = f"sensor-{s:02d}".encode()
            for i in range(VALID_PER_SENSOR):
                pub.send(reading(s, i, 20.0 if i % 2 else 22.0))
                if i % 2 == 0:  # a malformed copy of this reading, in the same partition
                    name = sorted(MALFORMED)[(i // 2 + s) % len(MALFORMED)]
                    reason, corrupt = MALFORMED[name]
                    body = corrupt(codec.encode(reading(s, 1000 + i, 99.0)))
                    bad.append((body, reason))
                    pub.send_raw(body, key=key)
            pub.send(reading(s, VALID_PER_SENSOR, 100.0))  # a spike: one alert per sensor
    assert {r for _, r in bad} == {r for r, _ in MALFORMED.values()}
    reason_of = dict(bad)
    total = SENSORS_N * (VALID_PER_SENSOR + 1) + len(bad)

    report = drain(topology, broker, total)
    assert report.stats["flag_spikes"].records_in == total
    assert report.stats["flag_spikes"].dead_letters == len(bad)

    letters = read_stream(broker, topology, topology.dead_letters.name, len(bad))
    assert len(letters) == len(bad)
    raw = raw_records(broker, "readings")
    for d in letters:
        assert d["stream"] == "readings" and d["node"] == "flag_spikes"
        assert d["error_type"] == f"DecodeError/{reason_of[d['raw']]}", d["message"]
        assert raw[(d["partition"], d["offset"])] == d["raw"], "the envelope points at the record"
    assert sorted(d["raw"] for d in letters) == sorted(body for body, _ in bad)

    alerts = read_stream(broker, topology, "alerts", SENSORS_N)
    assert sorted(a["sensor_id"] for a in alerts) == [f"sensor-{s:02d}" for s in range(SENSORS_N)]
    for a in alerts:  # the state saw exactly the valid readings: none of the malformed ones
        assert a["value"] == 100.0
        assert a["count"] == VALID_PER_SENSOR + 1
        assert a["mean"] == pytest.approx(21.0)
