"""Reading a node's latest snapshot from its state topic, for every engine on aiokafka.

Examples
--------
>>> import inspect
>>> inspect.iscoroutinefunction(load_snapshot)
True
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import TopicPartition

from doa.broker import BrokerError
from doa.state import Snapshot, latest_snapshot


async def load_snapshot(reader: Any, topic: str, p: int) -> Snapshot | None:
    """The latest complete snapshot of partition ``p`` of ``topic`` (None: there is none).

    ``reader`` is an ``AIOKafkaConsumer`` with no group. The tail is read in growing
    windows from the end until a complete snapshot is found. tansu answers
    ListOffsets(latest) with the last batch's base offset + 1, not the log end, so ``end``
    is a lower bound: each window is read until the partition is exhausted.
    """
    tp = TopicPartition(topic, p)
    reader.assign([tp])
    end = (await reader.end_offsets([tp]))[tp]
    begin = (await reader.beginning_offsets([tp]))[tp]
    window = 16
    while True:
        start = max(begin, end - window)
        snap = latest_snapshot(await read_tail(reader, tp, start, end))
        if snap is not None or start == begin:
            return snap
        window *= 4


async def read_tail(reader: Any, tp: TopicPartition, start: int, end: int,
                    timeout_s: float = 30.0) -> list[bytes]:
    """Every value of ``tp`` from ``start``: at least up to ``end``, then until a fetch
    comes back empty (the first fetch after a seek may come back empty: keep reading)."""
    reader.seek(tp, start)
    values: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    while True:
        messages = (await reader.getmany(tp, timeout_ms=300)).get(tp, [])
        if messages:
            values.extend(m.value for m in messages)
        elif await reader.position(tp) >= end:
            return values
        elif time.monotonic() > deadline:
            raise BrokerError(f"could not read {tp.topic}/{tp.partition} up to offset {end}")
