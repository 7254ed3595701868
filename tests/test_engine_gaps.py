"""The kafka engine never skips input offsets without a trace (issue 16, item 5).

A fetch that starts after the offset the state expects is fetched again from that offset
once (it may be a prefetch from before a seek); if the log really lacks those offsets the
records are processed and the gap is logged at WARNING with the stream, partition and offsets.
Driven through ``NodeWorker._process`` with a consumer and producer that record what they are
asked; no broker.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from doa.engines.kafka import GAP_REFETCHES, NodeWorker
from doa.topology.loader import load_topology

COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


class Message:
    def __init__(self, offset: int, value: bytes) -> None:
        self.topic, self.partition, self.offset = "events", 0, offset
        self.timestamp, self.key, self.value, self.headers = 1_700_000_000_000 + offset, b"k", \
            value, ()


class Consumer:
    def __init__(self) -> None:
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.commits: list[dict[TopicPartition, int]] = []

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}  # every topic is on the broker


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, stream: str, value: bytes, **_: Any) -> asyncio.Future[None]:
        self.sent.append((stream, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _worker() -> tuple[NodeWorker, Consumer, Producer, Any]:
    topology = load_topology(str(COUNTING))
    worker = NodeWorker(topology, topology.nodes["count"], "127.0.0.1:1")
    consumer, producer = Consumer(), Producer()
    worker._consumer, worker._producer = consumer, producer  # type: ignore[assignment]
    worker._ready.add(0)
    worker.states[0] = topology.nodes["count"].state()
    worker.positions[0] = {"events": 3}  # the state covers offsets 0..2
    worker.covered[0] = {"events": 3}  # ... and so does its snapshot
    codec = topology.codec("events")
    return worker, consumer, producer, codec


def _gaps(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "doa.engines.kafka" and r.levelno == logging.WARNING]


def _messages(codec: Any, offsets: list[int]) -> list[Message]:
    return [Message(o, codec.encode({"key": "k", "n": o, "payload": "p"})) for o in offsets]


def test_a_fetch_past_the_expected_offset_is_fetched_again_then_the_gap_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    worker, consumer, producer, codec = _worker()
    tp = TopicPartition("events", 0)
    with caplog.at_level(logging.WARNING, logger="doa.engines.kafka"):
        asyncio.run(worker._process({tp: _messages(codec, [5, 6])}))
        assert consumer.seeks == [(tp, 3)], "a fetch starting past offset 3 is fetched again"
        assert worker.stats.records_in == 0 and not producer.sent
        assert not _gaps(caplog), "a first re-fetch is not yet a gap"

        for _ in range(GAP_REFETCHES - 1):  # a stale fetch may come back after a rebalance
            asyncio.run(worker._process({tp: _messages(codec, [5, 6])}))
            assert worker.stats.records_in == 0 and not _gaps(caplog)
        asyncio.run(worker._process({tp: _messages(codec, [5, 6])}))  # the log lacks 3..4
    assert consumer.seeks == [(tp, 3)] * GAP_REFETCHES, "fetched again, but not forever"
    assert worker.stats.records_in == 2 and len(producer.sent) == 2
    assert worker.positions[0]["events"] == 7
    [text] = _gaps(caplog)
    assert "events partition 0" in text and "offsets 3..4" in text, text
    assert "node count" in text, text


def test_a_gap_inside_one_fetch_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    worker, consumer, _, codec = _worker()
    tp = TopicPartition("events", 0)
    with caplog.at_level(logging.WARNING, logger="doa.engines.kafka"):
        asyncio.run(worker._process({tp: _messages(codec, [3, 4, 7, 8, 10])}))
    assert not consumer.seeks
    assert worker.stats.records_in == 5
    [warning] = _gaps(caplog)
    assert "events partition 0" in warning and "offsets 5..6, 9..9" in warning, warning


def test_contiguous_fetches_report_nothing(caplog: pytest.LogCaptureFixture) -> None:
    worker, consumer, _, codec = _worker()
    tp = TopicPartition("events", 0)
    with caplog.at_level(logging.WARNING, logger="doa.engines.kafka"):
        asyncio.run(worker._process({tp: _messages(codec, [3, 4, 5])}))
        asyncio.run(worker._process({tp: _messages(codec, [6, 7])}))
    assert not consumer.seeks and not _gaps(caplog)
    assert worker.stats.records_in == 5


def test_only_offsets_a_snapshot_covers_are_committed() -> None:
    """The group's offsets never run ahead of the latest snapshot: a restart restores that
    snapshot, and a fetch prefetched from a committed offset ahead of it would skip records
    the state never saw (seen under load on Apache Kafka after kill -9)."""
    worker, consumer, producer, codec = _worker()
    tp = TopicPartition("events", 0)
    asyncio.run(worker._process({tp: _messages(codec, [3, 4, 5])}))
    assert worker.positions[0]["events"] == 6 and len(producer.sent) == 3
    assert all(c.get(tp, 3) == 3 for c in consumer.commits), consumer.commits
    worker.covered[0] = dict(worker.positions[0])  # what a written snapshot records
    asyncio.run(worker._commit(consumer))  # type: ignore[arg-type]
    assert consumer.commits[-1] == {tp: 6}
