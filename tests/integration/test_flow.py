"""10,000 records through a topology on the real broker: values, lineage, dead letters."""

from __future__ import annotations

import random

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain, raw_records, read_stream

pytestmark = pytest.mark.broker


def test_ten_thousand_records_with_lineage_and_100_malformed(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    rnd = random.Random(3)
    sent: dict[bytes, dict[str, object]] = {}
    malformed: set[bytes] = set()
    bad_positions = set(rnd.sample(range(10_100), 100))
    with Publisher("events", broker=broker, topology=topology) as pub:
        n = 0
        for i in range(10_100):
            if i in bad_positions:  # right marker, unknown fingerprint, unique bytes
                payload = b"\xc3\x01" + i.to_bytes(8, "little") + b"junk"
                malformed.add(payload)
                pub.send_raw(payload, key=b"k1")
            else:
                rec = {"key": f"k{rnd.randrange(50)}", "n": n, "payload": "p"}
                sent[pub.send(rec)] = rec
                n += 1
    report = drain(topology, broker, 10_100)
    assert report.stats["count"].records_in == 10_100
    assert report.stats["count"].dead_letters == 100

    outputs = read_stream(broker, topology, "counts", 10_000)
    assert len(outputs) == 10_000
    by_parent = {}
    for e in outputs:
        lin = lineage_of(e.headers)
        assert lin is not None and lin.node == "count"
        assert lin.fingerprint == topology.codec("counts").schema.fingerprint
        assert len(lin.parents) == 1
        by_parent[lin.parents[0]] = e
    assert set(by_parent) == set(sent), "every output leads back to exactly one published id"
    for parent, e in by_parent.items():
        assert (e["key"], e["n"]) == (sent[parent]["key"], sent[parent]["n"])
    per_key: dict[str, list[int]] = {}
    for rec in sent.values():
        per_key.setdefault(str(rec["key"]), []).append(int(rec["n"]))  # type: ignore[call-overload]
    for key, ns in per_key.items():
        got = sorted((e for e in outputs if e["key"] == key), key=lambda e: e.offset)
        assert [e["count"] for e in got] == list(range(1, len(ns) + 1))
        assert [e["n"] for e in got] == ns, "one key lives in one partition, in order"
        assert got[-1]["total"] == sum(ns)

    letters = read_stream(broker, topology, topology.dead_letters.name, 100)
    assert len(letters) == 100
    raw = raw_records(broker, "events")
    assert {d["raw"] for d in letters} == malformed
    for d in letters:
        assert d["stream"] == "events" and d["node"] == "count"
        assert d["error_type"] == "DecodeError/unknown-fingerprint"
        assert raw[(d["partition"], d["offset"])] == d["raw"], "the envelope points at the record"
        assert d["key"] == b"k1"


def test_a_step_that_raises_dead_letters_only_the_guilty(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(2000):
            pub.send({"key": f"k{i % 7}", "n": i, "payload": "poison" if i % 250 == 3 else ""})
    report = drain(topology, broker, 2000)
    assert report.stats["count"].dead_letters == 8
    letters = read_stream(broker, topology, topology.dead_letters.name, 8)
    assert sorted(topology.codec("events").decode(d["raw"])["n"] for d in letters) == [
        3, 253, 503, 753, 1003, 1253, 1503, 1753]
    assert all(d["error_type"] == "ValueError" and "poison event" in d["message"]
               for d in letters)
    outputs = read_stream(broker, topology, "counts", 1992)
    assert len(outputs) == 1992
    for k in range(7):  # counts skip the poisoned records: state saw each good one once
        ns = [i for i in range(2000) if i % 7 == k and i % 250 != 3]
        got = sorted((e for e in outputs if e["key"] == f"k{k}"), key=lambda e: e.offset)
        assert [e["count"] for e in got] == list(range(1, len(ns) + 1))
        assert got[-1]["total"] == sum(ns)
