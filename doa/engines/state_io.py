"""Reading a node's latest snapshot from its state topic, for every engine on aiokafka.

Examples
--------
>>> import inspect
>>> inspect.iscoroutinefunction(load_snapshot)
True
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

from aiokafka import TopicPartition

from doa.admin import state_topic
from doa.broker import BrokerError
from doa.engines import EngineSettings, NodeStats
from doa.runtime import NodeRunner
from doa.state import Snapshot, latest_snapshot, snapshot_records
from doa.topology import Node, Topology


class PartitionedNode:
    """What every engine keeps of a node: its runner, and per input partition its state, the
    input offsets that state covers, and when it was last snapshotted.

    An engine provides ``_reader`` (an ``AIOKafkaConsumer`` without group, for the state
    topic) and :meth:`_send_state` (produce one state record, acknowledged).
    """

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        self.topology = topology
        self.node = node
        self.address = address
        self.settings = settings or EngineSettings.from_env()
        self.stats = stats or NodeStats()
        self.runner = NodeRunner(topology, node)
        self.state_topic = state_topic(topology, node.name)
        self.states: dict[int, Any] = {}
        self.positions: dict[int, dict[str, int]] = {}
        self.seq: dict[int, int] = {}
        self._since_snapshot: dict[int, int] = defaultdict(int)
        self._snapshot_at: dict[int, float] = {}
        self._reader: Any = None

    async def _send_state(self, key: bytes, value: bytes, p: int) -> None:
        raise NotImplementedError

    def _snapshot_due(self, p: int, now: float) -> bool:
        s = self.settings
        if self._since_snapshot[p] >= s.snapshot_every_records:
            return True
        return (self._since_snapshot[p] > 0
                and (now - self._snapshot_at.get(p, 0.0)) * 1000 >= s.snapshot_every_ms)

    def _snapshot_taken(self, p: int) -> None:
        self._since_snapshot[p] = 0
        self._snapshot_at[p] = time.monotonic()

    async def snapshot(self, p: int) -> None:
        """Write partition ``p``'s state and input offsets to the state topic, acknowledged."""
        seq = self.seq.get(p, 0) + 1
        records = snapshot_records(p, seq, self.states[p], self.positions.get(p, {}),
                                   self.settings.chunk_size)
        for key, value in records:  # one at a time: each chunk acknowledged before the next
            await self._send_state(key, value, p)
        self.seq[p] = seq
        self._snapshot_taken(p)
        self.stats.snapshots += 1

    async def load(self, p: int) -> Snapshot | None:
        """The latest complete snapshot of partition ``p`` (None: start from the beginning)."""
        assert self._reader is not None
        return await load_snapshot(self._reader, self.state_topic, p)


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
