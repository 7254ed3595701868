"""The in-memory harness: the example topology end to end, dead letters, retries, ids, lineage,
partitioning, the clock and merged inputs.

Expected results are computed here independently of the nodes' code (a recomputation from
each sensor's full prefix of readings), never by calling the step.
"""

from __future__ import annotations

import json
import math
import random
import statistics
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import doa.testing
from doa.events import Event, coordinate_id, lineage_of, partition_for
from doa.testing import Clock, Harness
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from doa.wire.codec import MARKER

REPO = Path(__file__).resolve().parent.parent
SENSORS = load_topology(str(REPO / "topologies" / "sensors.py"))
THRESHOLD = 3.0
WARMUP = 10

ITEM = {"type": "record", "name": "item", "namespace": "t",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}

# Java's org.apache.kafka.common.utils.Utils.murmur2 test vectors (signed 32-bit results).
KAFKA_MURMUR2 = [(b"21", -973932308), (b"foobar", -790332482),
                 (b"a-little-bit-long-string", -985981536),
                 (b"a-little-bit-longer-string", -1486304829),
                 (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
                 (b"abc", 479470107)]


# -- data and the reference model ---------------------------------------------------------------
def readings(n: int = 600, sensors: int = 7, seed: int = 3) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        s = rnd.randrange(sensors)
        value = 20.0 + s + rnd.gauss(0.0, 1.0) + (rnd.choice([-9.0, 12.0])
                                                  if rnd.random() < 0.03 else 0.0)
        out.append({"sensor_id": f"s{s}", "ts": 1_000 + i, "value": value,
                    "location": {"lat": 52.0 + s / 10, "lon": 4.3},
                    "unit": "C" if i % 2 else None})
    return out


def reference(records: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Alerts and per-sensor (count, mean, m2), from each sensor's full prefix of values."""
    values: dict[str, list[float]] = defaultdict(list)
    alerts = []
    for r in records:
        prefix = values[r["sensor_id"]]
        if len(prefix) >= WARMUP:
            mean = statistics.fmean(prefix)
            std = math.sqrt(statistics.pvariance(prefix))
            z = (r["value"] - mean) / std if std > 0 else 0.0
            assert abs(abs(z) - THRESHOLD) > 1e-6, "data too close to the threshold"
            if abs(z) > THRESHOLD:
                alerts.append({"sensor_id": r["sensor_id"], "ts": r["ts"], "value": r["value"],
                               "mean": mean, "std": std, "zscore": z, "count": len(prefix) + 1,
                               "location": r["location"]})
        prefix.append(r["value"])
    stats = {s: (len(v), statistics.fmean(v), statistics.pvariance(v) * len(v))
             for s, v in values.items()}
    return alerts, stats


def close(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return bool(a == b)


def kafka_partition(key: bytes, n: int) -> int:
    from kafka.partitioner.default import murmur2  # kafka-python's, the Java client's hash

    return int((murmur2(key) & 0x7FFFFFFF) % n)


def merged_state(h: Harness) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in h.state("flag_spikes").values():
        assert not out.keys() & part.keys(), "a sensor's state lives in one partition"
        out.update(part)
    return out


# -- the example topology ----------------------------------------------------------------------
def test_sensors_alerts_and_state_match_reference() -> None:
    data = readings()
    want_alerts, want_stats = reference(data)
    assert 5 <= len(want_alerts) < 60, len(want_alerts)

    h = doa.testing.run(SENSORS, {"readings": data})

    got = sorted(h.records("alerts"), key=lambda a: (a["sensor_id"], a["ts"]))
    want = sorted(want_alerts, key=lambda a: (a["sensor_id"], a["ts"]))
    assert [(a["sensor_id"], a["ts"]) for a in got] == [(a["sensor_id"], a["ts"]) for a in want]
    for g, w in zip(got, want, strict=True):
        assert close(dict(g), w), (dict(g), w)
    state = merged_state(h)
    assert state.keys() == want_stats.keys()
    for sensor, (n, mean, m2) in want_stats.items():
        assert state[sensor][0] == n
        assert math.isclose(state[sensor][1], mean, rel_tol=1e-9, abs_tol=1e-9)
        assert math.isclose(state[sensor][2], m2, rel_tol=1e-9, abs_tol=1e-9)
    assert h.dead_letters == []


def test_malformed_inputs_become_dead_letters_with_full_envelopes() -> None:
    data = readings(200)
    codec = SENSORS.codec("readings")
    valid = codec.encode(data[0])
    bad = {
        "DecodeError/bad-marker": b"\x00\x01 not avro at all",
        "DecodeError/truncated": valid[:-5],
        "DecodeError/unknown-fingerprint": MARKER + b"\xff" * 8 + valid[10:],
    }
    clock = Clock(5_000)
    h = Harness(SENSORS, clock=clock)
    h.publish("readings", data[:100])
    where = {}
    for part, (kind, raw) in enumerate(bad.items()):
        clock.advance(10)
        where[kind] = (part + 1, len(h.logs["readings"][part + 1]), clock())
        h.publish("readings", [raw], partition=part + 1)
    h.publish("readings", data[100:])
    clock.advance(7)
    h.run()

    letters = {d["error_type"]: d for d in h.dead_letters}
    assert sorted(letters) == sorted(bad)
    for kind, raw in bad.items():
        d = letters[kind]
        partition, offset, published_at = where[kind]
        assert (d["stream"], d["partition"], d["offset"]) == ("readings", partition, offset)
        assert h.logs["readings"][partition][offset].value == raw
        assert d["raw"] == raw
        assert d["node"] == "flag_spikes"
        assert d["key"] is None
        assert d["record_timestamp"] == published_at
        assert d["timestamp"] == clock()
        assert "stream 'readings'" in d["message"]
        assert kind.split("/")[1] in d["message"]
        lin = lineage_of(h.logs[d.stream][d.partition][d.offset].headers)
        assert lin is not None and lin.node == "flag_spikes"
        assert lin.parents == (coordinate_id("readings", partition, offset),)
    # the rest flowed: every good reading counted exactly once
    assert sum(s[0] for s in merged_state(h).values()) == len(data)
    want, _ = reference(data)
    assert len(h.records("alerts")) == len(want)


def test_output_ids_stable_across_runs_and_batch_sizes() -> None:
    data = readings(300)

    def outcome(**options: Any) -> list[tuple[bytes, dict[str, Any], int, int]]:
        h = doa.testing.run(SENSORS, {"readings": [*data, b"junk"]}, **options)
        return [(e.id, dict(e), e.partition, e.offset)
                for s in ("alerts", "sensors.dlq") for e in h.records(s)]

    first = outcome()
    assert len(first) > 3
    assert len({i for i, *_ in first}) == len(first), "ids are unique"
    assert outcome() == first
    one = outcome(batch_size=1)
    assert [i for i, *_ in one] == [i for i, *_ in first]
    assert one == first
    assert outcome(batch_size=7) == first


def test_alert_lineage_points_at_its_reading() -> None:
    h = doa.testing.run(SENSORS, {"readings": readings(300)})
    by_coords = {(r["sensor_id"], r["ts"]): r for r in h.records("readings")}
    alerts = [(raw, h.topology.codec("alerts").decode(raw.value))
              for part in h.logs["alerts"] for raw in part]
    assert alerts
    fingerprint = SENSORS.codec("alerts").schema.fingerprint
    for raw, alert in alerts:
        lin = lineage_of(raw.headers)
        reading = by_coords[(alert["sensor_id"], alert["ts"])]
        assert lin is not None
        assert lin.parents == (reading.id,)
        assert lin.node == "flag_spikes" and lin.fingerprint == fingerprint
        source = lineage_of(h.logs["readings"][reading.partition][reading.offset].headers)
        assert source is not None and source.id == reading.id
    ids = [lin.id for raw, _ in alerts if (lin := lineage_of(raw.headers)) is not None]
    assert sorted(e.id for e in h.records("alerts")) == sorted(ids)
    assert len(set(ids)) == len(ids) == len(alerts)


def test_harness_records_carry_their_lineage() -> None:
    h = doa.testing.run(SENSORS, {"readings": readings(300)})
    by_coords = {(r["sensor_id"], r["ts"]): r for r in h.records("readings")}
    alerts = h.records("alerts")
    assert alerts
    for alert in alerts:
        lin = alert.lineage
        assert lin is not None and lin.id == alert.id
        assert lin.parents == (by_coords[(alert["sensor_id"], alert["ts"])].id,)


def test_partitioning_matches_kafka_default_partitioner() -> None:
    from doa.events import murmur2

    for key, signed in KAFKA_MURMUR2:
        assert murmur2(key) == signed & 0xFFFFFFFF
    h = doa.testing.run(SENSORS, {"readings": readings(300, sensors=20)})
    used = set()
    for stream in ("readings", "alerts"):
        for p, part in enumerate(h.logs[stream]):
            for raw in part:
                record = SENSORS.codec(stream).decode(raw.value or b"")
                assert raw.key == record["sensor_id"].encode()
                assert p == kafka_partition(raw.key, 4) == partition_for(raw.key, 4)
                used.add(p)
    assert used == {0, 1, 2, 3}
    # a power-of-two count hides the sign bit; check counts where it matters too
    keys = [f"sensor-{i}".encode() for i in range(200)] + [b"", "ünï".encode(), b"\xff" * 9]
    for n in (1, 3, 5, 7, 12, 1000):
        assert [partition_for(k, n) for k in keys] == [kafka_partition(k, n) for k in keys]


def test_harness_partitions_with_kafka_partitioner_on_odd_counts(schemas: Path) -> None:
    h = doa.testing.run(counting(schemas, partitions=3), {"src": items(list(range(60)), 25)})
    for stream in ("src", "out"):
        assert sum(len(part) for part in h.logs[stream]) == 60
        for p, part in enumerate(h.logs[stream]):
            for raw in part:
                assert raw.key is not None and p == kafka_partition(raw.key, 3)


# -- a small topology of our own ---------------------------------------------------------------
@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    (tmp_path / "item.avsc").write_text(json.dumps(ITEM))
    return tmp_path


def items(values: list[int], keys: int = 5) -> list[dict[str, Any]]:
    return [{"k": f"k{i % keys}", "v": v} for i, v in enumerate(values)]


def counting(schemas: Path, partitions: int = 1) -> Topology:
    t = Topology("counting", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k", partitions=partitions)
    out = t.stream("out", schema="t.item", key="k", partitions=partitions)

    @t.node(reads=src, writes=out, state={"n": 0, "seen": []})
    def count(state: dict[str, Any], batch: list[Event]) -> tuple[Any, list[Any]]:
        outs = []
        for e in batch:
            state["n"] += 1                 # mutated before the step raises: must roll back
            state["seen"].append(e["v"])
            if e["v"] < 0:
                raise ValueError(f"negative value {e['v']}")
            outs.append((e, {"k": e["k"], "v": e["v"] * 10}))
        return state, outs

    return t


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_step_raising_dead_letters_only_guilty_records(schemas: Path, batch_size: int) -> None:
    values = [*range(1, 21)]
    for i in (3, 4, 12, 19):
        values[i] = -values[i]
    t = counting(schemas)
    h = doa.testing.run(t, {"src": items(values)}, batch_size=batch_size)
    good = [v for v in values if v >= 0]
    assert h.state("count") == {0: {"n": len(good), "seen": good}}
    assert [e["v"] for e in h.records("out")] == [v * 10 for v in good]
    letters = h.dead_letters
    assert [(d["offset"], d["error_type"]) for d in letters] == [
        (i, "ValueError") for i in (3, 4, 12, 19)]
    assert [d["message"] for d in letters] == [f"negative value {values[i]}"
                                             for i in (3, 4, 12, 19)]
    assert all(d["node"] == "count" and d["stream"] == "src" for d in letters)
    ids = [e.id for e in h.records("out")]
    assert len(set(ids)) == len(ids)


def test_step_raising_ids_do_not_depend_on_batch_size(schemas: Path) -> None:
    values = [5, -1, 7, 8, -2, 9] * 4

    def outcome(size: int) -> list[tuple[bytes, dict[str, Any]]]:
        h = doa.testing.run(counting(schemas, partitions=3), {"src": items(values)},
                            batch_size=size)
        return [(e.id, dict(e)) for s in ("out", "counting.dlq") for e in h.records(s)]

    assert outcome(1) == outcome(3) == outcome(256)


def test_step_raising_on_everything_keeps_initial_state(schemas: Path) -> None:
    h = doa.testing.run(counting(schemas), {"src": items([-1, -2, -3])})
    assert h.state("count") == {0: {"n": 0, "seen": []}}
    assert h.records("out") == []
    assert len(h.dead_letters) == 3


# -- runtime-checked step mistakes -------------------------------------------------------------
BAD = -1


def emit_undeclared(e: Event) -> Any:
    return (e, "other", {"k": e["k"], "v": 0})


def bare_dict(e: Event) -> Any:
    return {"k": e["k"], "v": 0}


def schema_mismatch(e: Event) -> Any:
    return (e, {"k": e["k"], "v": "not a long"})


def not_a_pair(e: Event) -> Any:
    return NOT_A_PAIR


NOT_A_PAIR = object()

MISTAKES: dict[str, tuple[Callable[[Event], Any], str, str]] = {
    # name: (what the step emits for a BAD record, error type, output stream named)
    "undeclared stream": (emit_undeclared, "StepError", "'other'"),
    "bare dict": (bare_dict, "StepError", "'out'"),
    "schema mismatch": (schema_mismatch, "EncodeError", "'out'"),
    "not (state, outputs)": (not_a_pair, "StepError", ""),
}


def mistaken(schemas: Path, mistake: str) -> Topology:
    emit, _, _ = MISTAKES[mistake]
    t = Topology("mistakes", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k", partitions=2)
    out = t.stream("out", schema="t.item", key="k", partitions=2)
    t.stream("other", schema="t.item", key="k")

    @t.node(reads=src, writes=out, state=lambda: 0)
    def sloppy(state: int, batch: list[Event]) -> Any:
        outs = []
        for e in batch:
            if e["v"] != BAD:
                outs.append((e, {"k": e["k"], "v": e["v"] + 1}))
                continue
            made = emit(e)
            if made is NOT_A_PAIR:
                return [state, outs]  # a list, not a (state, outputs) tuple
            outs.append(made)
        return state + len(batch), outs

    return t


@pytest.mark.parametrize("mistake", list(MISTAKES))
def test_step_mistake_dead_letters_only_those_records(schemas: Path, mistake: str) -> None:
    values = [10, 11, BAD, 13, 14, 15, BAD, 17, 18, 19]
    t = mistaken(schemas, mistake)
    data = items(values)
    h = doa.testing.run(t, {"src": data})
    _, error_type, _ = MISTAKES[mistake]

    good = sorted(v + 1 for v in values if v != BAD)
    assert sorted(e["v"] for e in h.records("out")) == good
    assert h.records("other") == []
    assert sum(h.state("sloppy").values()) == len(good)
    letters = h.dead_letters
    assert len(letters) == 2
    raws = {(r.partition, r.offset): r.value for part in h.logs["src"] for r in part}
    for d in letters:
        assert d["error_type"] == error_type
        assert d["stream"] == "src" and d["node"] == "sloppy"
        assert "node 'sloppy'" in d["message"]
        assert d["raw"] == raws[(d["partition"], d["offset"])]
        assert t.codec("src").decode(d["raw"])["v"] == BAD


@pytest.mark.parametrize("mistake", [
    "undeclared stream",
    "bare dict",
    "schema mismatch",
    "not (state, outputs)",
])
def test_step_mistake_message_names_step_and_stream(schemas: Path, mistake: str) -> None:
    t = mistaken(schemas, mistake)
    h = doa.testing.run(t, {"src": items([1, BAD])})
    _, _, stream = MISTAKES[mistake]
    (letter,) = h.dead_letters
    where = t.nodes["sloppy"].where
    path, _, line = where.rpartition(":")  # the user's file and line, not a module name
    assert Path(path).resolve() == Path(__file__).resolve()
    lines = Path(__file__).read_text().splitlines()[int(line) - 1: int(line) + 2]
    assert any(x.strip().startswith("def sloppy(") for x in lines), lines  # decorator or def
    assert "node 'sloppy'" in letter["message"]
    assert where in letter["message"]
    assert stream in letter["message"]


# -- clock and merged inputs -------------------------------------------------------------------
def test_clock_drives_timestamps(schemas: Path) -> None:
    t = counting(schemas)
    clock = Clock(1_000)
    h = Harness(t, clock=clock)
    h.publish("src", items([1]))
    assert clock.advance(250) == 1_250
    h.publish("src", items([2, -3]))
    clock.advance(50)
    h.run()
    assert [e.timestamp for e in h.records("src")] == [1_000, 1_250, 1_250]
    # Outputs carry their input's event time, not the clock at processing (1_300).
    assert [e.timestamp for e in h.records("out")] == [1_000, 1_250]
    (letter,) = h.dead_letters
    assert (letter["timestamp"], letter["record_timestamp"]) == (1_300, 1_250)
    with pytest.raises(ValueError):
        clock.advance(-1)
    assert clock() == 1_300 and Clock()() == 0


def two_inputs(schemas: Path) -> Topology:
    t = Topology("merge", schemas=schemas)
    left = t.stream("left", schema="t.item")
    right = t.stream("right", schema="t.item")

    @t.node(reads=[left, right], state=list)
    def seen(state: list[Any], batch: list[Event]) -> tuple[Any, list[Any]]:
        return state + [(e.stream, e["v"], e.timestamp) for e in batch], []

    return t


@pytest.mark.parametrize("batch_size", [1, 2, 256])
def test_two_inputs_merge_by_timestamp(schemas: Path, batch_size: int) -> None:
    h = Harness(two_inputs(schemas), batch_size=batch_size)
    for i in range(6):
        h.publish("left" if i % 2 == 0 else "right", items([i]))
        h.clock.advance(10)
    h.publish("right", items([100]))  # same timestamp: ties go in the declared order of reads
    h.publish("left", items([101]))
    h.run()
    assert h.state("seen")[0] == [
        ("left", 0, 0), ("right", 1, 10), ("left", 2, 20), ("right", 3, 30),
        ("left", 4, 40), ("right", 5, 50), ("left", 101, 60), ("right", 100, 60)]


@pytest.mark.parametrize("batch_size", [1, 256])
def test_each_partition_is_read_in_offset_order_once(schemas: Path, batch_size: int) -> None:
    h = Harness(two_inputs(schemas), batch_size=batch_size)
    h.clock.advance(100)
    h.publish("left", items([1]))
    h.clock.now = 50  # a producer-set (CreateTime) timestamp earlier than the previous record
    h.publish("left", items([2]))
    h.run()
    assert [v for _, v, _ in h.state("seen")[0]] == [1, 2]


def test_an_output_anchored_outside_the_batch_is_refused(schemas: Path) -> None:
    # Ids derive from the anchor (last parent): an anchor kept from an earlier batch would
    # give ids that depend on batch boundaries, so the runtime refuses it, naming the node.
    t = Topology("keeper", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k")
    out = t.stream("out", schema="t.item", key="k")

    @t.node(reads=src, writes=out, state=dict)
    def keep_first(state: dict[str, Any], batch: list[Event]) -> tuple[Any, list[Any]]:
        state.setdefault("first", batch[0])
        return state, [(state["first"], {"k": e["k"], "v": e["v"]}) for e in batch]

    h = doa.testing.run(t, {"src": items([1, 2, 3, 4])}, batch_size=2)
    assert len(h.records("out")) == 2  # the first batch anchors on its own events
    letters = h.dead_letters
    assert [d["offset"] for d in letters] == [2, 3]
    assert all("keep_first" in d["message"] and "current batch" in d["message"]
               for d in letters)
