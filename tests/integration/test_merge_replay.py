"""A restarted node takes its merged inputs in the order its predecessor took them.

A node reading two streams merges them by record timestamp, but it cannot wait forever for
an input that has nothing: after ``max_idle_ms`` it takes the other's records (as Kafka
Streams does after ``max.task.idle.ms``). A record that comes later with an earlier timestamp
(its writer stalled) is then taken after records it precedes in time; a replay, reading the
logs whole, would put it before them, so a node restarted after ``kill -9`` from an older
snapshot would write other outputs for the same inputs than the ones already in its streams
(the compose test saw 3 of 20,000 fraud outcomes differ so). Each output batch carries the
input positions its batch ended at (:mod:`doa.runtime.cuts`), and a restart replays up to
those positions in the order they say: from the beginning (no snapshot) and from a snapshot
(which says where the outputs it covers end), on both engines, and for each partition of a
node merging several (one read of the outputs plans them all).
"""

from __future__ import annotations

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.keys import key_bytes, partition_for
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import Tail, read_stream, wait_until

pytestmark = pytest.mark.broker

MERGING = str(ROOT / "tests" / "topologies" / "merging.py")
T0 = 1_700_000_000_000
# A restart writes again what the first run wrote after its snapshot, to compare the two (by
# default it leaves those out: doa.runtime.written).
NO_SNAPSHOT = {"DOA_SNAPSHOT_EVERY_RECORDS": "1000000", "DOA_SNAPSHOT_EVERY_MS": "3600000",
               "DOA_REWRITE": "1"}
EVERY_4 = {**NO_SNAPSHOT, "DOA_SNAPSHOT_EVERY_RECORDS": "4"}


def _grown_to(tail: Tail, n: int) -> bool:
    tail.poll(50)
    return len(tail.records) >= n


@pytest.mark.parametrize(("engine", "env", "replayed"),
                         [("kafka", NO_SNAPSHOT, 11), ("kafka", EVERY_4, 3),
                          ("faust", EVERY_4, 3)],
                         ids=["from-the-beginning", "from-a-snapshot", "faust-engine"])


@pytest.mark.brokers("tansu", where={"env": NO_SNAPSHOT},
                     reason="the merge plan is doa's; from a snapshot runs on Kafka; CI time")
@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="the merge plan is doa's; the kafka engine runs on Kafka; CI time")
def test_a_restart_replays_a_late_record_where_the_first_run_took_it(
        broker: str, engine: str, env: dict[str, str], replayed: int) -> None:
    # One record at a time, each its own batch: with a snapshot every 4 records, the last is
    # taken after the 8th, and the restart replays 8, 9 and the late record (from the
    # outputs' end that snapshot names); without snapshots it replays all 11.
    t = load_topology(MERGING)
    prepare(t, broker)
    with Tail(broker, "seen") as tail:
        node = doa_process("run", MERGING, "--broker", broker, "--engine", engine, "-q", env=env)
        try:
            with Publisher("first", broker=broker, topology=t) as pub:
                for n in range(10):
                    pub.send({"key": "a", "n": n, "payload": ""}, timestamp_ms=T0 + 10 * n)
                    pub.flush()
                    assert wait_until(lambda n=n: _grown_to(tail, n + 1), 90), \
                        f"the first run did not take record {n}"
            with Publisher("second", broker=broker, topology=t) as pub:  # late: between 1 and 2
                pub.send({"key": "b", "n": 100, "payload": ""}, timestamp_ms=T0 + 15)
            assert wait_until(lambda: _grown_to(tail, 11), 60), "the late record was not taken"
        finally:
            kill9(node)
        node = doa_process("run", MERGING, "--broker", broker, "--engine", engine, "-q", env=env)
        try:
            assert wait_until(lambda: _grown_to(tail, 11 + replayed), 90), \
                "the restart replayed too little"
            tail.drain(1500)
        finally:
            kill9(node)
    outputs = read_stream(broker, t, "seen", idle_s=2)
    assert len(outputs) == 11 + replayed  # the snapshot was where this test put it
    first, again = outputs[:11], outputs[11:]
    assert {e["n"]: e["count"] for e in first}[100] == 11  # the first run took it last
    assert [(e["n"], e["count"], e.timestamp) for e in again] == \
        [(e["n"], e["count"], e.timestamp) for e in first[-replayed:]]


@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="the merge plan is doa's; the kafka engine runs on Kafka; CI time")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_each_partition_of_a_restart_replays_as_its_first_run_took_it(
        broker: str, engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Two partitions, their records interleaved: each partition's snapshots (every 4 of its
    # records) name another place where the node's outputs ended, and the restart reads the
    # outputs once for both (from the earliest) and plans each partition from its own cuts.
    monkeypatch.setenv("MERGING_PARTITIONS", "2")
    t = load_topology(MERGING)
    prepare(t, broker)
    keys = [next(k for k in (f"k{i}" for i in range(100))
                 if partition_for(key_bytes(k), 2) == p) for p in (0, 1)]
    with Tail(broker, "seen") as tail:
        node = doa_process("run", MERGING, "--broker", broker, "--engine", engine, "-q",
                           env=EVERY_4)
        try:
            with Publisher("first", broker=broker, topology=t) as pub:
                for n in range(10):
                    for p, key in enumerate(keys):
                        pub.send({"key": key, "n": n, "payload": ""}, timestamp_ms=T0 + 10 * n)
                        pub.flush()
                        assert wait_until(lambda k=2 * n + p + 1: _grown_to(tail, k), 90), \
                            f"the first run did not take record {n} of partition {p}"
            with Publisher("second", broker=broker, topology=t) as pub:
                for p, key in enumerate(keys):  # late: between 1 and 2 of each partition
                    pub.send({"key": key, "n": 100 + p, "payload": ""}, timestamp_ms=T0 + 15)
            assert wait_until(lambda: _grown_to(tail, 22), 60), "the late records were not taken"
        finally:
            kill9(node)
        node = doa_process("run", MERGING, "--broker", broker, "--engine", engine, "-q",
                           env=EVERY_4)
        try:
            assert wait_until(lambda: _grown_to(tail, 28), 90), "the restart replayed too little"
            tail.drain(1500)
        finally:
            kill9(node)
    outputs = read_stream(broker, t, "seen", idle_s=2)
    assert len(outputs) == 28
    for p, key in enumerate(keys):
        mine = [(e["n"], e["count"], e.timestamp) for e in outputs if e["key"] == key]
        first, again = mine[:11], mine[11:]
        assert first[-1][:2] == (100 + p, 11)  # the first run took the late record last
        assert again == first[-3:], f"partition {p}"
