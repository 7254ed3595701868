"""Reading a node's latest snapshot from its state topic, for every engine on aiokafka.

With a signing key (:mod:`doa.cluster.signing`), snapshots are written signed and a snapshot the key
does not vouch for is refused unread: one ERROR line names the state topic, partition and
offset, and the node restores from the newest snapshot it can verify, or from the beginning
of its inputs (see :mod:`doa.runtime.snapshot`). Without a key, a node warns once per process.

Examples
--------
>>> import inspect
>>> inspect.iscoroutinefunction(load_snapshot)
True
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import partial
from typing import Any

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

from doa.cluster import signing as signing
from doa.cluster.admin import outgrown, state_topic
from doa.cluster.fetchwait import FetchWait, apply_aiokafka
from doa.cluster.registry import reread
from doa.engines import EngineSettings, NodeStats
from doa.events import LINEAGE_HEADER
from doa.local.embedded import BrokerError
from doa.node import Node
from doa.observe.meter import MeteredRunner
from doa.runtime.cuts import HEADER, MAX_PENDING, CutLog, plan
from doa.runtime.merge import TimestampMerge
from doa.runtime.runner import OutRecord, RawRecord
from doa.runtime.snapshot import Refused, Snapshot, restore_outcome, scan, snapshot_records
from doa.runtime.written import Written
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

# How often a node's consumer asks the broker for its inputs' partitions (aiokafka's default,
# 5 min, left a node for minutes on a stream that had gained partitions): see _outgrown.
METADATA_MAX_AGE_MS = 5000


class PartitionedNode:
    """What every engine keeps of a node: its runner, and per input partition its state, the
    input offsets that state covers, and when it was last snapshotted.

    An engine provides ``_reader`` (an ``AIOKafkaConsumer`` without group, for the state
    topic), :meth:`_send_state` (produce one state record, acknowledged) and, for nodes that
    read several streams, :meth:`_caught_up` (see :meth:`_merge`).
    """

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        self.topology = topology
        self.node = node
        self.address = address
        self.settings = settings or EngineSettings.from_env()
        self.stats = stats or NodeStats()
        self.runner = MeteredRunner(topology, node)  # a NodeRunner counting for /metrics
        self.runner.reread = partial(reread, address, topology)  # versions deployed later
        self.state_topic = state_topic(topology, node.name)
        self.states: dict[int, Any] = {}
        self.positions: dict[int, dict[str, int]] = {}
        # Input offsets the latest written (or restored) snapshot covers: all a node commits,
        # so the group's offsets are never ahead of the state a restart restores.
        self.covered: dict[int, dict[str, int]] = {}
        self.failure: BaseException | None = None  # the error that stopped the node: no snapshot
        self.refusal: BrokerError | None = None  # an input outgrew its declared partitions
        self.seq: dict[int, int] = {}
        self._since_snapshot: dict[int, int] = defaultdict(int)
        self._snapshot_at: dict[int, float] = {}
        self._ready: set[int] = set()  # partitions whose snapshot is loaded
        self._merges: dict[int, TimestampMerge] = {}  # multi-input nodes: per partition
        self._reader: Any = None
        # a merging node's batch ends, carried on its outputs for a restart (doa.runtime.cuts)
        self._cuts = CutLog(node.name, node.reads, node.writes) if len(node.reads) > 1 \
            else None
        self._plans: dict[int, list[tuple[int, ...]]] = {}  # a restart's, per partition
        self._written = Written()  # what a restart must not write again (doa.runtime.written)
        self.signing_key = signing.state_key()  # None: warned once, nothing is checked

    async def _send_state(self, key: bytes, value: bytes, p: int) -> None:
        raise NotImplementedError

    def _caught_up(self, stream: str, p: int) -> bool:
        """Whether the consumer has fetched everything the broker has of ``stream``
        partition ``p`` (an empty merge buffer then means: nothing more to wait for)."""
        raise NotImplementedError

    def _merge(self, fetched: Mapping[int, Sequence[RawRecord]]) -> dict[int, list[RawRecord]]:
        """Co-partitioned inputs in timestamp order, deterministically (see
        :mod:`doa.runtime.merge`): ``fetched`` records join each ready partition's merge,
        and what each merge can release now is returned, per partition."""
        now = time.monotonic() * 1000
        released: dict[int, list[RawRecord]] = {}
        for p in self._ready:
            merge = self._merges.get(p)
            if merge is None:
                merge = self._merges[p] = TimestampMerge(
                    self.node.reads, self.settings.max_idle_ms, at=self.positions.get(p),
                    plan=self._plans.pop(p, None))
            merge.add(fetched.get(p, ()))
            released[p] = merge.release(now, partial(self._caught_up, p=p))
        return released

    def _outgrown(self, assigned: Iterable[tuple[str, int]] = (),
                  counts: Mapping[str, int] | None = None) -> bool:
        """Whether an input stream has more partitions on the broker than the topology
        declares: a partition of it among ``assigned`` past the declared ones, or more of them
        in ``counts`` (what the consumer's metadata says, refreshed every
        ``METADATA_MAX_AGE_MS``). Then ``refusal`` holds the one-line error the engine stops
        with (:func:`doa.cluster.admin.outgrown`; logged once, at INFO: the engine's stop says
        it where the user sees it, once), and the engine loads none of the
        assigned partitions (their state partitions do not exist: the load would wait on them,
        inside a rebalance callback whose errors aiokafka only logs)."""
        if self.refusal is None:
            have = dict(counts or {})
            for topic, p in assigned:
                have[topic] = max(have.get(topic, 0), p + 1)
            declared = {s: self.topology.streams[s].partitions for s in self.node.reads}
            self.refusal = outgrown(self.node.name, self.state_topic, declared, have)
            if self.refusal is not None:
                log.info("%s", self.refusal)
        return self.refusal is not None

    def _tagged(self, p: int, outputs: list[OutRecord]) -> list[OutRecord]:
        """A batch of partition ``p`` is done: its outputs, carrying where the node's batches
        ended if it merges inputs (:mod:`doa.runtime.cuts`)."""
        if self._cuts is None:
            return outputs
        return self._cuts.tag(p, self.positions.get(p, {}), outputs)

    async def _load_plans(self, snaps: Mapping[int, Snapshot | None]) -> None:
        """Read where the previous run's batches of the newly loaded partitions ended after
        their snapshots ``snaps`` (from the node's outputs since), for each merge to take the
        records so again. One read of the outputs for all of them, from the earliest place
        any snapshot says the outputs ended (:func:`plan` keeps each partition's own cuts)."""
        if self._cuts is None or not snaps:
            return
        tps = [TopicPartition(s, q) for s in self.node.writes
               for q in range(self.topology.streams[s].partitions)]
        since = {(tp.topic, tp.partition): min(
            snap.outputs.get((tp.topic, tp.partition), 0) if snap is not None else 0
            for snap in snaps.values()) for tp in tps}
        for snap in snaps.values():
            self._written.restored(snap.outputs if snap is not None else {})
        values = await read_headers(self._reader, tps, since, HEADER)
        for p in snaps:
            covered = tuple(self.positions[p].get(s, 0) for s in self.node.reads)
            self._plans[p] = plan(values, self.node.name, p, covered)
            if self._plans[p]:
                log.info("node %s: partition %s takes its inputs as its previous run did up "
                         "to %s", self.node.name, p,
                         dict(zip(self.node.reads, self._plans[p][-1], strict=True)))

    def _delivered(self, outputs: list[OutRecord], offsets: list[int]) -> None:
        """The broker acknowledged ``outputs`` at ``offsets``: where the outputs end."""
        self._written.delivered(outputs, offsets)

    async def _restart_reads(self, snaps: Mapping[int, Snapshot | None]) -> None:
        """Read, for the newly loaded partitions, how the previous run took their inputs
        (:meth:`_load_plans`) and which outputs it wrote after their snapshots, so that they
        are not written again (:mod:`doa.runtime.written`): one read of the node's output
        streams (and its dead letters) from where the earliest snapshot says they ended.
        Then the reader lets go of every partition it read (the state topic's too): idle, a
        partition of a topic that goes (a broker replaced by an empty one) would be fetched
        and its metadata asked for without pause (on Kafka ~1,500 log lines a second)."""
        try:
            await self._read_again(snaps)
        finally:
            self._reader.unsubscribe()

    async def _read_again(self, snaps: Mapping[int, Snapshot | None]) -> None:
        await self._load_plans(snaps)
        if not snaps or self.settings.rewrite:
            return
        dlq = self.topology.dead_letters
        streams = {s: self.topology.streams[s].partitions for s in self.node.writes}
        streams[dlq.name] = dlq.partitions
        tps = [TopicPartition(s, q) for s, n in streams.items() for q in range(n)]
        since = {(tp.topic, tp.partition): min(
            snap.outputs.get((tp.topic, tp.partition), 0) if snap is not None else 0
            for snap in snaps.values()) for tp in tps}
        self._written.restored(since)  # outputs this run writes go after these
        covered = {(s, p): self.positions[p].get(s, 0) for p in snaps for s in self.node.reads}
        found = self._written.remember(
            await read_headers(self._reader, tps, since, LINEAGE_HEADER), covered)
        if found:
            log.info("node %s: %d outputs its previous run wrote after the snapshots of "
                     "partitions %s are in the log: the replay does not write them again",
                     self.node.name, found, sorted(snaps))

    def _snapshot_due(self, p: int, now: float) -> bool:
        s = self.settings
        if self._since_snapshot[p] >= s.snapshot_every_records:
            return True
        if self._cuts is not None and self._cuts.backlog(p) >= MAX_PENDING:
            return True
        return (self._since_snapshot[p] > 0
                and (now - self._snapshot_at.get(p, 0.0)) * 1000 >= s.snapshot_every_ms)

    def _snapshot_taken(self, p: int) -> None:
        self._since_snapshot[p] = 0
        self._snapshot_at[p] = time.monotonic()

    async def snapshot(self, p: int) -> None:
        """Write partition ``p``'s state and input offsets to the state topic, acknowledged.
        Nothing once ``failure`` is set (outputs the broker refused for good): the states may
        cover outputs it does not hold, so a restart must replay them from the last snapshot."""
        if self.failure is not None:
            return
        seq = self.seq.get(p, 0) + 1
        records = snapshot_records(p, seq, self.states[p], self.positions.get(p, {}),
                                   self.settings.chunk_size, key=self.signing_key,
                                   topic=self.state_topic,
                                   outputs=self._written.ends or None)
        covered = dict(self.positions.get(p, {}))
        for key, value in records:  # one at a time: each chunk acknowledged before the next
            await self._send_state(key, value, p)
        self.covered[p] = covered
        self.seq[p] = seq
        self._snapshot_taken(p)
        if self._cuts is not None:
            self._cuts.covered(p)
        self.stats.snapshots += 1
        self.runner.meter.snapshot_bytes += sum(len(v) for _k, v in records)

    async def load(self, partitions: Sequence[int]) -> dict[int, Snapshot | None]:
        """The latest complete snapshot of each of ``partitions`` (None: start from the
        beginning). The state partitions' first and end offsets are asked in two requests for
        all of them (partition by partition cost two round trips each, under the lock that
        holds the node's first batch)."""
        reader = self._reader
        assert reader is not None
        tps = [TopicPartition(self.state_topic, p) for p in partitions]
        if not tps:
            return {}
        reader.assign(tps)
        ends = await reader.end_offsets(tps)
        begins = await reader.beginning_offsets(tps)
        return {tp.partition: await load_snapshot(reader, self.state_topic, tp.partition,
                                                  (begins[tp], ends[tp]), self.signing_key)
                for tp in tps}


async def load_snapshot(reader: Any, topic: str, p: int, bounds: tuple[int, int],
                        key: bytes | None = None) -> Snapshot | None:
    """The latest complete snapshot of partition ``p`` of ``topic`` that ``key`` vouches for
    (None: there is none). Each refused snapshot is logged once, with what is restored instead.

    ``reader`` is an ``AIOKafkaConsumer`` with no group; ``bounds`` the partition's first and
    end offsets. The tail is read in growing windows from the end until a complete snapshot
    is found. tansu answers ListOffsets(latest) with the last batch's base offset + 1, not the
    log end, so ``end`` is a lower bound (see :func:`read_tail`). An empty partition (a node's
    first start) is not read at all: the read would wait out a fetch that brings nothing.
    """
    begin, end = bounds
    if end <= begin:
        return None
    tp = TopicPartition(topic, p)
    reader.assign([tp])
    window = 16
    refused: dict[int, Refused] = {}
    while True:
        start = max(begin, end - window)
        tail = await read_tail(reader, tp, start, end)
        snap, found = scan([v for _o, v in tail], key, topic=topic, partition=p,
                           offsets=[o for o, _v in tail])
        refused.update((r.last, r) for r in found)
        if snap is not None or start == begin:
            for r in sorted(refused.values(), key=lambda r: -r.last):
                log.error(r.message(restore_outcome(snap)))
            return snap
        window *= 4


async def read_tail(reader: Any, tp: TopicPartition, start: int, end: int,
                    timeout_s: float = 30.0) -> list[tuple[int, bytes]]:
    """Every ``(offset, value)`` of ``tp`` from ``start`` up to ``end`` at least (see
    :func:`read_ranges`)."""
    messages = await read_ranges(reader, {tp: (start, end)}, timeout_s)
    return [(m.offset, m.value) for m in messages]


async def read_ranges(reader: Any, ranges: Mapping[TopicPartition, tuple[int, int]],
                      timeout_s: float = 30.0) -> list[Any]:
    """The records of each partition in ``ranges`` from its start up to its end at least,
    each partition's in offset order (the first fetch after a seek may come back empty:
    keep reading). ``reader``: an ``AIOKafkaConsumer`` without group.

    An end may be the last batch's base offset + 1 (tansu's ListOffsets(latest)), not the log
    end: a fetch brings whole batches, so once the position has passed it that last batch was
    read whole. A partition that brings nothing for ``timeout_s`` raises ``BrokerError``.
    """
    todo = {tp: end for tp, (start, end) in ranges.items() if start < end}
    if not todo:
        return []
    if not set(todo) <= reader.assignment():
        reader.assign(list(todo))
    for tp in todo:
        reader.seek(tp, ranges[tp][0])
    found: list[Any] = []
    deadline = time.monotonic() + timeout_s
    wait = FetchWait(getattr(getattr(reader, "_fetcher", None), "_fetch_max_wait_ms", 10))
    while todo:
        data = await reader.getmany(*todo, timeout_ms=300)
        apply_aiokafka(reader, wait, bool(data))  # a long partition on tansu
        for messages in data.values():
            found.extend(messages)
        for tp in [tp for tp, end in todo.items() if await reader.position(tp) >= end]:
            del todo[tp]
        if todo and not data and time.monotonic() > deadline:
            tp = next(iter(todo))
            raise BrokerError(f"could not read {tp.topic}/{tp.partition} up to offset "
                              f"{todo[tp]}")
    return found


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """A consumer's rebalance callbacks, passed on to its worker's ``revoked``/``assigned``."""

    def __init__(self, worker: Any) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.assigned(set(assigned))


async def read_headers(reader: Any, tps: Sequence[TopicPartition],
                       since: Mapping[tuple[str, int], int], header: str,
                       timeout_s: float = 30.0) -> list[bytes]:
    """The values of ``header`` on the records of ``tps`` from ``since`` (default: the
    beginning) to their end (see :func:`read_ranges`)."""
    if not tps:
        return []
    reader.assign(list(tps))
    ends = await reader.end_offsets(list(tps))
    begins = await reader.beginning_offsets(list(tps))
    ranges = {tp: (max(begins[tp], since.get((tp.topic, tp.partition), 0)), ends[tp])
              for tp in tps}
    return [v for m in await read_ranges(reader, ranges, timeout_s)
            for k, v in m.headers or () if k == header]
