"""A stream whose records came one at a time (a record batch each: a service publishing events
as they happen) is read whole by a node (on either engine), by a subscriber and by dead-letter
replay, on both brokers.

The embedded broker (tansu 0.6) lists a partition's batches on every fetch and answers with
what it has read when the fetch's wait is over: past a few thousand batches a 10 ms fetch
brings nothing, ever. Before the fetch wait stretched (:mod:`doa.cluster.fetchwait`), a node
read 301 of 60,000 such records (4 partitions) in 60 s and a subscriber 67, then stopped as
idle, its output silently short.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from doa.engines.launch import prepare, run_nodes
from doa.lineage.log import Log
from doa.topology.loader import load, load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import raw_records, read_stream

pytestmark = pytest.mark.broker

PER_PARTITION = 15_000  # one-record batches in each of the 4 partitions of ``events``
N = 4 * PER_PARTITION


async def _one_at_a_time(address: str, topology: Topology) -> None:
    """``PER_PARTITION`` events into each partition (key ``k<partition>``), each sent alone:
    each its own record batch."""
    codec = topology.codec("events")
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=0, acks="all")
    await producer.start()

    async def fill(partition: int) -> None:
        key = f"k{partition}"
        for i in range(PER_PARTITION):
            value = codec.encode({"key": key, "n": partition * PER_PARTITION + i, "payload": "p"})
            await (await producer.send("events", value, key=key.encode(), partition=partition))

    try:
        await asyncio.gather(*(fill(p) for p in range(4)))
    finally:
        await producer.stop()


def _filled(broker: str) -> Topology:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    asyncio.run(_one_at_a_time(broker, topology))
    return topology


def _counted(broker: str, topology: Topology, engine: str, bound_s: float = 120,
             output: str = "counts") -> None:
    """The node (on ``engine``) reads every event and counts every key to the end. A bound,
    not a timing: with the fix this takes seconds, without it the node read 301 of 60,000."""
    report = asyncio.run(run_nodes(
        topology, broker, ["count"], seconds=bound_s, signals=False, engine=engine,
        until=lambda stats: stats["count"].records_in >= N))
    assert report.stats["count"].records_in == N
    counts = read_stream(broker, topology, output, expected=N, idle_s=10)
    assert Counter(c["key"] for c in counts) == {f"k{p}": PER_PARTITION for p in range(4)}
    assert {c["key"]: c["count"] for c in counts} == {f"k{p}": PER_PARTITION for p in range(4)}


def _twin() -> Topology:
    """The counting topology under another name, writing ``faust-counts``: a second run with
    its own consumer group and state reads the same ``events`` from the beginning (one fill
    of 60,000 acknowledged sends serves both engines: 25-40 s of the suite's time)."""
    counting = load(COUNTING)[0]
    t = Topology("counting-faust", schemas=Path(COUNTING).parent.parent / "schemas")
    events = t.stream("events", schema="testing.Event", key="key", partitions=4)
    counts = t.stream("faust-counts", schema="testing.Count", key="key", partitions=4)
    t.node(reads=events, writes=counts, state=counting.initial)(counting.count)
    return t


@pytest.mark.brokers("tansu",
                     reason="Apache Kafka answers a fetch as soon as it has records: no starving "
                            "there; CI time")
def test_streams_of_one_record_batches_are_read_whole(broker: str) -> None:
    topology = _filled(broker)
    # without the fix the subscriber stopped as idle (10 s without a record) with a fraction
    events = read_stream(broker, topology, "events", expected=N, idle_s=10)
    assert sorted(e["n"] for e in events) == list(range(N))
    for p in range(4):  # each partition in offset order
        ns = [e["n"] for e in events if e.partition == p]
        assert ns == list(range(p * PER_PARTITION, (p + 1) * PER_PARTITION))
    # lineage reads single records: the last of a partition, deep in it
    with Log(broker, topology) as log:
        last = log.get("events", 0, PER_PARTITION - 1)
        assert last is not None and last.event["n"] == PER_PARTITION - 1
    _counted(broker, topology, "kafka")
    # Idle, Faust's consumer read them whole even without the stretch; beside two busy
    # processes it stalled in 4 of 8 runs (a partition left behind the others, e.g. at 4,060
    # of 15,000, was never read further with a 10 ms wait)
    twin = _twin()
    prepare(twin, broker)
    _counted(broker, twin, "faust", bound_s=300, output="faust-counts")  # loaded: up to 95 s


def test_a_snapshot_is_read_from_deep_in_a_long_state_partition(broker: str) -> None:
    """Loading a snapshot reads the end of the node's state partition (``read_tail``): one
    that has gathered many batches (a snapshot every few seconds, for hours; tansu never
    compacts) is read in a second. Without the fix this read took 18 s here, so a 10 s bound
    failed it (a restart gives up on a snapshot it cannot read in 30 s)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from doa.cluster.admin import TopicSpec, ensure_topics
    from doa.engines.partitioned import read_tail

    async def run() -> list[tuple[int, bytes]]:
        await ensure_topics(broker, [TopicSpec("state-like", 1)])
        producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=0, acks="all")
        await producer.start()
        try:
            for i in range(PER_PARTITION):
                await (await producer.send("state-like", b"%d" % i, partition=0))
        finally:
            await producer.stop()
        reader = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False,
                                  fetch_max_wait_ms=10)
        await reader.start()
        try:
            tp = TopicPartition("state-like", 0)
            reader.assign([tp])
            return await read_tail(reader, tp, 7_000, PER_PARTITION, timeout_s=10)
        finally:
            await reader.stop()

    got = asyncio.run(run())
    assert [o for o, _ in got] == list(range(7_000, PER_PARTITION))
    assert [int(v) for _, v in got] == list(range(7_000, PER_PARTITION))


@pytest.mark.brokers("tansu", reason="Apache Kafka answers a fetch as soon as it has records: "
                                      "no starving there (replay is tested on both in "
                                      "test_dlq_replay.py)")
def test_dead_letters_written_one_at_a_time_are_replayed_whole(broker: str) -> None:
    """A node dead-letters each bad record as it fails: at low rates a letter a batch. Replay
    (``doa dlq --replay``) reads the dead-letter stream with kafka-python: without the stretch
    it gave up on 15,000 such letters (``letters still unread after 60 s``)."""
    from doa.dlq import replay

    topology = load_topology(COUNTING)
    prepare(topology, broker)
    letters = topology.codec(topology.dead_letters.name)
    raw = topology.codec("events").encode({"key": "k1", "n": 0, "payload": "p"})

    async def fill() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=broker, linger_ms=0, acks="all")
        await producer.start()
        try:
            for i in range(PER_PARTITION):  # each a letter of a different record of events
                value = letters.encode({
                    "stream": "events", "partition": 1, "offset": i, "node": "count",
                    "error_type": "ValueError", "message": "a bug, since fixed", "key": b"k1",
                    "raw": raw, "timestamp": 0, "record_timestamp": 0, "attempt": 0,
                    "original": None})
                await (await producer.send(topology.dead_letters.name, value, partition=0))
        finally:
            await producer.stop()

    asyncio.run(fill())
    report = replay(broker, topology, timeout_s=60)
    assert (report.replayed, report.failed, report.skipped) == ({"events": PER_PARTITION}, [],
                                                                [])
    # read raw: a Subscriber skips records replayed for a node (they are node count's)
    events = raw_records(broker, "events", idle_s=10)
    assert len(events) == PER_PARTITION and {p for p, _ in events} == {1}
