"""One doa node mounted in a Faust app: its state, offsets and snapshots (no faust import here).

:mod:`doa.engines.faust` wires a :class:`MountedNode` into a ``faust.App`` (an agent feeding it
batches, and the app's rebalance signals); this module holds what the node does with them, so
that only ``doa.engines.faust`` imports faust. The app is used through four of its members:
``app.producer.send`` (outputs and snapshots), ``app.consumer.assignment``,
``app.consumer.seek_wait`` and ``app.consumer.highwater`` (and its consumer thread, through
:mod:`doa.engines.faust_app` and :mod:`doa.engines.faust_topics`).

Per assigned input partition the node keeps its state, the input offsets that state covers
(``positions``) and the next offset it expects (``_next``). It processes a record only at the
offset it expects: a record below it is a re-delivery (already in the state) and is skipped; a
record above it means the consumer is positioned past records the state has not seen, so the
node seeks the consumer back (unless the log really has no records there, e.g. compaction). So
whatever Faust's consumer fetches, the state stays a function of the input log prefix.

A restart (a new assignment) replays the inputs after the snapshot but does not write again
what the previous run wrote for them: as on the kafka engine, the node reads the lineage ids
of its outputs since the snapshot and leaves those out (:mod:`doa.runtime.written`;
``DOA_REWRITE=1`` writes them again). Faust's own committed offsets play no part in it: the
replay starts at the snapshot's offsets whatever Faust committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from doa.cluster.security import aiokafka_options
from doa.engines import EngineSettings, NodeStats
from doa.engines.delivery import refused
from doa.engines.faust_app import partition_counts
from doa.engines.faust_topics import FaustTopicWatch
from doa.engines.nocreate import no_auto_create
from doa.engines.partitioned import PartitionedNode
from doa.local.embedded import BrokerError
from doa.node import Node
from doa.runtime.runner import OutRecord, RawRecord
from doa.runtime.snapshot import Snapshot
from doa.topology.topology import Topology

log = logging.getLogger(__name__)


class MountedNode(PartitionedNode):
    """A node's processing inside a Faust app; see the module docstring."""

    def __init__(self, app: Any, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        super().__init__(topology, node, address, settings, stats)
        self.app = app
        self._next: dict[TopicPartition, int] = {}  # next offset to process, per input
        self._seeking: set[TopicPartition] = set()  # sought back: drop until _next arrives
        self._left: dict[int, dict[str, int]] = {}  # what the last revoked ones' states cover
        self._abandoned = False  # a stop given up: the stats stay as they were (abandon)
        self._warmed = False
        self._started = time.monotonic()
        self._lock = asyncio.Lock()  # rebalance handlers never interleave with a batch
        # inputs or state topic gone from the broker (replaced by an empty one), and back
        self.topics = FaustTopicWatch(node.name, address, node.reads, self.state_topic)

    # -- lifecycle -----------------------------------------------------------------------------
    async def open(self) -> None:
        """Run the node's on_start hook (off the loop) and start the snapshot reader."""
        if not self._warmed:
            self._warmed = True
            self.stats.warm_up_s = await asyncio.get_running_loop().run_in_executor(
                None, self.runner.start)
        if self._reader is None:
            self._reader = no_auto_create(AIOKafkaConsumer(
                bootstrap_servers=self.address, **aiokafka_options(self.address),
                enable_auto_commit=False,
                auto_offset_reset="earliest", fetch_max_wait_ms=self.settings.fetch_max_wait_ms,
                client_id=f"doa-{self.node.name}-state"))
            await self._reader.start()

    async def close(self) -> None:
        self.runner.letters.flush(final=True)  # a dead-letter summary still waiting: said
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.stop()

    def abandon(self) -> None:
        """Give up a stop that did not complete (the broker is gone): drop the snapshot
        reader without waiting for it; later records are ignored. ``stats`` keep saying what
        was pending then: a shutdown that gets the lock after this finds no partition left
        and would have counted nothing pending (``doa run`` then said "nothing was pending"
        of state it never wrote)."""
        self._abandoned = True
        self._reader = None
        self._ready.clear()

    # -- rebalances (called from the app's signals) --------------------------------------------
    async def assign(self, assignment: Iterable[tuple[str, int]]) -> dict[TopicPartition, int]:
        """Load the snapshot of every newly assigned partition; the offset each assigned input
        must be read from (the app commits them, so Faust's seek to committed lands there)."""
        await self.open()
        mine = {TopicPartition(t, p) for t, p in assignment if t in self.node.reads}
        if self._outgrown(mine, partition_counts(self.app, self.node.reads)):
            # An input gained partitions: none is loaded (FaustWorker stops with ``refusal``),
            # and the group commits what the snapshots of the partitions held until this
            # rebalance cover (Faust's own commits lag by a batch).
            return {tp: self._left[tp.partition][tp.topic] for tp in mine
                    if tp.topic in self._left.get(tp.partition, {})}
        async with self._lock:
            if not await self.topics.there(self._reader):
                # the broker came back without them: what the node held belongs to a log
                # that is gone, and there is no state topic to snapshot it to
                self._reader.unsubscribe()
                self._forget(set(self._ready))
                self.topics.leaving = True  # FaustWorker takes the app out of its group
                return {}
            snaps = await self.load(sorted({tp.partition for tp in mine} - self._ready))
            for p, snap in snaps.items():
                await self._load(p, snap, {tp for tp in mine if tp.partition == p})
            await self._restart_reads(snaps)  # before any record of them is taken (the lock)
            # idle, it holds no partition: one of a topic that goes would be fetched (and its
            # metadata asked for) without pause, a thousand log lines a second
            self._reader.unsubscribe()
            return {tp: self._next[tp] for tp in mine if tp in self._next}

    async def _load(self, p: int, snap: Snapshot | None, tps: set[TopicPartition]) -> None:
        assert self._reader is not None
        self.states[p] = snap.state if snap else self.node.state()
        self.positions[p] = dict(snap.offsets) if snap else {}
        self.seq[p] = snap.seq if snap else 0
        begin = await self._reader.beginning_offsets(list(tps))
        for tp in tps:
            self._next[tp] = self.positions[p].setdefault(tp.topic, begin[tp])
            self._seeking.discard(tp)
        self.covered[p] = dict(self.positions[p])
        self._snapshot_taken(p)
        self._merges.pop(p, None)
        self._ready.add(p)
        self._note()
        log.info("node %s: partition %s from %s", self.node.name, p,
                 f"snapshot {snap.seq} at {snap.offsets}" if snap else "the beginning")

    async def mind_topics(self) -> None:
        """Leave the app's consumer group while the broker lacks the node's topics, join it
        again once they are back (:meth:`doa.engines.faust_topics.FaustTopicWatch.mind`)."""
        if self._reader is not None:
            await self.topics.mind(self.app, self._reader)

    async def revoke(self, revoked: Iterable[tuple[str, int]]) -> None:
        """Snapshot the revoked partitions and forget them."""
        gone = {p for t, p in revoked if t in self.node.reads}
        async with self._lock:
            written = [p for p in sorted(gone & self._ready) if self._since_snapshot[p] > 0]
            if written and not await self.topics.there(self._reader):
                written = []  # the state topic is gone: nowhere to write them (said once)
            for p in written:
                await self.snapshot(p)
            if written and self.failure is None:  # what a stop's "nothing was pending" rests on
                log.info("node %s: partitions %s revoked: their state snapshotted at %s",
                         self.node.name, written, {p: self.covered[p] for p in written})
            self._forget(gone)

    async def shutdown(self) -> None:
        """Snapshot every partition (the app is stopping; none after a failure of the agent:
        :meth:`PartitionedNode.snapshot`); later records are ignored."""
        async with self._lock:
            for p in sorted(self._ready):
                if self._since_snapshot[p] > 0:
                    await self.snapshot(p)
            self._forget(set(self._ready))

    def _forget(self, partitions: set[int]) -> None:
        self._left = {p: self.covered.pop(p) for p in partitions if p in self.covered}
        self._ready -= partitions
        for p in partitions:
            self.states.pop(p, None)
            self.positions.pop(p, None)
            self._merges.pop(p, None)
            self._since_snapshot.pop(p, None)
        self._note()
        for tp in [tp for tp in self._next if tp.partition in partitions]:
            del self._next[tp]
            self._seeking.discard(tp)

    # -- the batch path --------------------------------------------------------------------------
    async def process(self, records: Sequence[RawRecord]) -> None:
        """Process records as Faust delivered them (any partitions, any order of partitions)."""
        async with self._lock:
            by_partition: dict[int, list[RawRecord]] = defaultdict(list)
            for r in records:
                if r.partition in self._ready and await self._admit(r):
                    by_partition[r.partition].append(r)
            if len(self.node.reads) > 1:
                by_partition = self._merge(by_partition)
            await self._run(by_partition)

    async def tick(self) -> None:
        """Release what waits in the timestamp merge (nodes with several inputs)."""
        async with self._lock:
            if any(self._merges.values()):
                await self._run(self._merge({}))

    async def _admit(self, r: RawRecord) -> bool:
        tp = TopicPartition(r.stream, r.partition)
        expected = self._next[tp]
        if r.offset < expected:
            return False  # re-delivered (Faust read from an older offset): already in the state
        if r.offset > expected:
            if tp in self._seeking:
                return False  # fetched before our seek took effect
            first = await self._first_offset(tp, expected, r.offset)
            if first < r.offset:  # records the state has not seen: read them first
                log.warning("node %s: %s/%s delivered offset %s, expected %s: seeking back",
                            self.node.name, tp.topic, tp.partition, r.offset, expected)
                self._seeking.add(tp)
                await self.app.consumer.seek_wait({tp: expected})
                return False
        self._seeking.discard(tp)
        self._next[tp] = r.offset + 1
        return True

    async def _first_offset(self, tp: TopicPartition, start: int, found: int) -> int:
        """The first offset at or after ``start`` in ``tp`` (a gap in the log, or not)."""
        assert self._reader is not None
        self._reader.assign([tp])
        self._reader.seek(tp, start)
        deadline = time.monotonic() + 10
        try:
            while time.monotonic() < deadline:
                messages = (await self._reader.getmany(tp, timeout_ms=200)).get(tp, [])
                if messages:
                    return min(int(messages[0].offset), found)
        finally:
            self._reader.unsubscribe()
        raise BrokerError(f"could not read {tp.topic}/{tp.partition} from offset {start}")

    def _caught_up(self, stream: str, p: int) -> bool:
        tp = TopicPartition(stream, p)
        try:
            high = self.app.consumer.highwater(tp)
        except Exception:  # not assigned (any more), or not fetched yet
            return False
        return high is not None and self._next.get(tp, 0) >= high

    async def _run(self, by_partition: dict[int, list[RawRecord]]) -> None:
        outputs: list[OutRecord] = []
        for p, raws in by_partition.items():
            if raws:
                outputs.extend(self._tagged(p, self._step(p, raws)))
        if not any(by_partition.values()):
            return
        now = time.monotonic()
        st = self.stats
        st.batches += 1
        st.first_batch_at = st.first_batch_at or now
        st.last_batch_at = now
        outputs = self._written.drop(outputs)  # a restart's replay: not those in the log
        if outputs:
            await self._deliver(outputs)  # acknowledged before a snapshot claims them
            if st.first_output_s is None:
                st.first_output_s = time.monotonic() - self._started
        self._note()
        await self._maybe_snapshot()
        self._note()

    def _step(self, p: int, raws: list[RawRecord]) -> list[OutRecord]:
        """Run partition ``p``'s records through the node; its state, positions and the stats
        move on; returns the outputs."""
        result = self.runner.process(self.states[p], raws)
        self.states[p] = result.state
        positions = self.positions[p]
        for r in raws:
            positions[r.stream] = r.offset + 1
        self._since_snapshot[p] += len(raws)
        st = self.stats
        st.records_in += result.records_in
        st.records_out += result.records_out
        st.dead_letters += result.dead_letters
        st.skipped += result.skipped
        return result.outputs

    async def _deliver(self, outputs: list[OutRecord]) -> None:
        """Hand ``outputs`` to the app's producer and wait until the broker acknowledged
        each. ``stats.outputs_unacked`` counts those not acknowledged yet, whether still to be
        handed over or in flight (Faust's producer waits for a broker that is away), so a
        stop abandoned meanwhile says how many (doa.engines.outage)."""
        st = self.stats
        st.outputs_unacked = len(outputs)

        def acknowledged(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:
                st.outputs_unacked -= 1

        pending = []
        for out in outputs:
            # Faust takes seconds and truncates ``int(ts * 1000)``: +0.5 ms keeps it exact.
            future = await self.app.producer.send(
                out.stream, out.key, out.value, out.partition, (out.timestamp + 0.5) / 1000,
                list(out.headers))
            future.add_done_callback(acknowledged)
            pending.append(future)
        results = await asyncio.gather(*pending, return_exceptions=True)
        for out, result in zip(outputs, results, strict=True):
            if isinstance(result, KafkaError) and not result.retriable:
                raise refused(self.node.name, out.stream, out.partition, result) from result
            if isinstance(result, BaseException):
                raise result
        self._delivered(outputs, [getattr(r, "offset", -1) for r in results])
        st.outputs_unacked = 0

    def _note(self) -> None:
        """Keep the counters of what a stop would leave undone current (see doa.engines.outage):
        Faust commits the offsets of the assigned partitions on a stop that completes."""
        if self._abandoned:
            return  # what was pending at the abandon stays said (see abandon)
        st = self.stats
        st.partitions = st.offsets_uncommitted = len(self._ready)
        st.unsnapshotted = sum(1 for p in self._ready if self._since_snapshot[p] > 0)

    # -- snapshots (the same records and topic as the kafka engine: see doa.runtime.snapshot)
    async def _maybe_snapshot(self) -> None:
        now = time.monotonic()
        for p in list(self._ready):
            if self._snapshot_due(p, now):
                await self.snapshot(p)

    async def _send_state(self, key: bytes, value: bytes, p: int) -> None:
        await (await self.app.producer.send(self.state_topic, key, value, p, None, None))
