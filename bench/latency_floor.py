"""The embedded broker's own latency floor (``python -m bench.latency_floor``).

    python -m bench.latency_floor [--records 200]

What a hop through the embedded broker (tansu) costs before any harness or variant: aiokafka
round trips (a produce with ``acks=all``, an offset commit) one at a time, and a lone record
from its send to a consumer already waiting at the end of its partitions, per consumer fetch
wait (``fetch_max_wait_ms``, with ``fetch_min_bytes=1``). A broker that answers a waiting fetch
as soon as data arrives gives the same latency at every fetch wait; tansu holds the fetch past
the data (measured: ~40 ms at p50 behind a 200 ms wait, ~3 ms behind 5-10 ms), so the fetch
wait bounds every hop of the latency mode (:mod:`bench.peers_latency`) and the mode sets it to
5 ms for every variant. Records are sent at irregular intervals (37-115 ms apart) so that
their arrival does not lock to a polling period. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from bench.peers_latency import percentile

FETCH_WAITS_MS = (200, 50, 10, 5)


def row(name: str, latencies: list[float]) -> str:
    """One markdown row: p50, p99 and max of ``latencies`` (ms).

    >>> row("x", [1.0, 2.0, 3.0])
    '| x | 2.0 | 3.0 | 3.0 |'
    """
    ordered = sorted(latencies)
    return (f"| {name} | {percentile(ordered, 50):.1f} | {percentile(ordered, 99):.1f} | "
            f"{ordered[-1]:.1f} |")


async def round_trips(address: str, n: int) -> list[str]:
    """Produce (acks=all) and commit round trips, one at a time."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id="floor",
                                enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        sends: list[float] = []
        for i in range(n):
            began = time.perf_counter()
            await (await producer.send("floor", b"x" * 100, partition=i % 4))
            sends.append((time.perf_counter() - began) * 1000)
            await asyncio.sleep(0.002)
        tp = TopicPartition("floor", 0)
        consumer.assign([tp])
        commits: list[float] = []
        for i in range(n):
            began = time.perf_counter()
            await consumer.commit({tp: i})
            commits.append((time.perf_counter() - began) * 1000)
    finally:
        await consumer.stop()
        await producer.stop()
    return [row("produce round trip (acks=all, linger 0)", sends),
            row("offset commit round trip", commits)]


async def lone_records(address: str, n: int, fetch_wait_ms: int) -> str:
    """``n`` records sent one at a time to a consumer waiting at the end of ``floor``."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=0, acks="all")
    consumer = AIOKafkaConsumer(bootstrap_servers=address, fetch_max_wait_ms=fetch_wait_ms,
                                fetch_min_bytes=1, enable_auto_commit=False)
    await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition("floor", p) for p in range(4)])
        await consumer.seek_to_end()
        await consumer.getmany(timeout_ms=300)
        latencies: list[float] = []
        for i in range(n):
            await asyncio.sleep(0.037 + (i % 7) * 0.013)
            sent = time.time() * 1000
            await producer.send("floor", b"x", partition=i % 4, timestamp_ms=int(sent))
            data: Any = {}
            while not data:
                data = await consumer.getmany(timeout_ms=1000)
            latencies.append(time.time() * 1000 - sent)
    finally:
        await consumer.stop()
        await producer.stop()
    return row(f"lone record, send -> fetched, fetch wait {fetch_wait_ms} ms", latencies)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.latency_floor")
    parser.add_argument("--records", type=int, default=200,
                        help="round trips per row (lone records: a quarter of them)")
    a = parser.parse_args(argv)
    from doa.cluster.admin import TopicSpec, ensure_topics
    from doa.local.embedded import EmbeddedBroker

    rows = ["| embedded broker (tansu), aiokafka | p50 ms | p99 ms | max ms |",
            "|---|---:|---:|---:|"]
    with EmbeddedBroker() as broker:
        asyncio.run(ensure_topics(broker.address, [TopicSpec("floor", 4)]))
        rows += asyncio.run(round_trips(broker.address, a.records))
        for wait in FETCH_WAITS_MS:
            rows.append(asyncio.run(lone_records(broker.address, max(a.records // 4, 10),
                                                 wait)))
            print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
