"""A stream whose records came one at a time (a record batch each: a service publishing events
as they happen) is read whole by a node and by a subscriber, on both brokers.

The embedded broker (tansu 0.6) lists a partition's batches on every fetch and answers with
what it has read when the fetch's wait is over: past a few thousand batches a 10 ms fetch
brings nothing, ever. Before the fetch wait stretched (:mod:`doa.cluster.fetchwait`), a node
read 301 of 60,000 such records (4 partitions) in 60 s and a subscriber 67, then stopped as
idle, its output silently short.
"""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain, read_stream

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


def test_streams_of_one_record_batches_are_read_whole(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    asyncio.run(_one_at_a_time(broker, topology))

    # Bounds, not timings: with the fix each read takes seconds; without it the subscriber
    # stopped as idle (10 s without a record) with a fraction, the node read 301 of 60,000
    events = read_stream(broker, topology, "events", expected=N, idle_s=10)
    assert sorted(e["n"] for e in events) == list(range(N))
    for p in range(4):  # each partition in offset order
        ns = [e["n"] for e in events if e.partition == p]
        assert ns == list(range(p * PER_PARTITION, (p + 1) * PER_PARTITION))

    report = drain(topology, broker, N, timeout=90)
    assert report.stats["count"].records_in == N
    counts = read_stream(broker, topology, "counts", expected=N, idle_s=10)
    assert Counter(c["key"] for c in counts) == {f"k{p}": PER_PARTITION for p in range(4)}
    assert {c["key"]: c["count"] for c in counts} == {f"k{p}": PER_PARTITION for p in range(4)}
