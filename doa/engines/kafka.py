"""The default engine: a batch loop on aiokafka (``getmany`` → step → produce → snapshot).

Per node and process: one consumer in the node's group (``TOPOLOGY.NODE``), one producer, a
state per assigned input partition. On assignment the worker loads each partition's latest
snapshot and seeks its inputs to the offsets the snapshot covers (no snapshot: the beginning,
so state is always a function of the log prefix consumed). Outputs are acknowledged before
offsets are committed and before a snapshot claims to cover them; on revocation and on stop
the worker snapshots first. Delivery is at-least-once with stable event ids; a delivery that
failed for good keeps every later snapshot from covering its batch
(:meth:`doa.engines.partitioned.PartitionedNode.snapshot`).

While the broker is away the worker waits: an output the broker did not acknowledge is sent
again (same event id) until it is, a snapshot is retried when next due, and a commit waits for
the group coordinator. ``NodeStats`` says at any moment what a stop would leave undone
(:mod:`doa.engines.outage` bounds the stop and reports it). An input offset gap is fetched
again once
from the offset the state expects; a gap that is really in the log (compaction, transaction
markers) is reported at WARNING with the partition and offsets, never skipped silently.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidSessionTimeoutError, KafkaError

from doa.cluster.admin import batch_limits
from doa.cluster.security import aiokafka_options
from doa.engines import EngineSettings, NodeStats, session_refused
from doa.engines.chain import Fetch, Handoff, Pauses, hand_over
from doa.engines.delivery import deliver, retriable
from doa.engines.gaps import (  # noqa: F401 (tests)
    GAP_REFETCHES,
    check_gaps,
    made_anew,
    report_deleted,
)
from doa.engines.outage import stop_client
from doa.engines.partitioned import PartitionedNode, Rebalance
from doa.node import Node
from doa.runtime.runner import OutRecord, RawRecord
from doa.topology.topology import Topology

log = logging.getLogger(__name__)
# A batch's outputs to one partition usually fit one record batch (doa.engines.delivery): one
# request per partition instead of one per 16 KiB (aiokafka's default), far below the 1 MB a
# broker takes by default.
OUTPUT_BATCH_BYTES = 256 * 1024


class NodeWorker(PartitionedNode):
    """Runs one node against a broker until ``stop`` is set."""

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        super().__init__(topology, node, address, settings, stats)
        self._consumer: AIOKafkaConsumer | None = None
        self._limits: dict[str, int] = {}
        self._producer: AIOKafkaProducer | None = None
        self._started = time.monotonic()
        self._refetched: dict[TopicPartition, tuple[int, int]] = {}  # (offset, seeks)
        self._committed: dict[TopicPartition, int] = {}  # offsets the group holds (as we know)
        self._abandoned = False  # cancelled after the shutdown grace: no more network on close
        self._fetched: dict[TopicPartition, int] = {}  # next offset expected from a fetch
        self._lock = asyncio.Lock()  # rebalance callbacks never interleave with a batch
        self.handoff = Handoff()  # records an upstream node in this process hands over
        self.chained: dict[str, list[Handoff]] = {}  # output stream -> downstream hand-offs
        self._pauses: Pauses | None = None  # inputs not fetched while hand-overs bring them
        self._busy = True  # a batch in hand (and until started): see idle()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        # Compile (kernels: 0.3-2 s) before joining the group, off the loop: heartbeats of
        # other workers in this process keep going.
        self.stats.warm_up_s = await asyncio.get_running_loop().run_in_executor(
            None, self.runner.start)
        s = self.settings
        report_deleted()
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            linger_ms=s.linger_ms, acks=s.acks,
            enable_idempotence=False, max_request_size=2 * s.chunk_size + 65536,
            max_batch_size=OUTPUT_BATCH_BYTES, client_id=f"doa-{self.node.name}")
        await self._producer.start()
        # a topic taking smaller batches than ours gets batches of its size (doa.engines.delivery)
        self._limits = await batch_limits(self.address, self.topology.outputs(self.node.name))
        self._reader = AIOKafkaConsumer(bootstrap_servers=self.address,
                                        **aiokafka_options(self.address),
                                        enable_auto_commit=False,
                                        fetch_max_wait_ms=s.fetch_max_wait_ms,
                                        client_id=f"doa-{self.node.name}-state")
        await self._reader.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            group_id=f"{self.topology.name}.{self.node.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms, client_id=f"doa-{self.node.name}",
            **s.extra_consumer)
        self._consumer.subscribe(list(self.node.reads), listener=Rebalance(self))
        self._pauses = Pauses(self._consumer)
        try:
            await self._consumer.start()  # returns once the first assignment is loaded
        except InvalidSessionTimeoutError as e:
            raise session_refused(self.address, self.node.name, s.session_timeout_ms) from e

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set, then snapshot, commit and leave the group."""
        assert self._consumer is not None
        fetch = Fetch(self._consumer, self.settings.max_records, self.handoff,
                      self.settings.fetch_max_wait_ms)
        try:
            while not stop.is_set():
                self._busy = False
                data = await fetch.next()
                self._busy = bool(data)
                async with self._lock:
                    handed = self.handoff.take() if self.handoff.pending else None
                    if data or handed or any(self._merges.values()):
                        self._busy = True
                        await self._process(data, handed)
                    await self._maybe_snapshot()
                    self._account()
                    if self._pauses is not None:
                        self._pauses.check(time.monotonic())
        except asyncio.CancelledError:
            self._abandoned = True  # the shutdown grace is over: leave without the broker
            raise
        finally:
            self._busy = False
            fetch.cancel()
            await self.close()

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                try:
                    if not self._abandoned:
                        await self._snapshot_all()
                        await self._commit(consumer)
                finally:
                    await stop_client(consumer, self._abandoned, self.node.name)
        finally:
            for client in (self._producer, self._reader):
                if client is not None:
                    await stop_client(client, self._abandoned, self.node.name)
            self._producer = self._reader = None

    def _account(self) -> None:
        """Keep ``stats`` saying how many partitions have state not yet snapshotted."""
        self.stats.unsnapshotted = sum(1 for p in self.states if self._since_snapshot[p] > 0)

    # -- the loop ------------------------------------------------------------------------------
    async def _process(self, data: dict[TopicPartition, list[Any]],
                       handed: dict[TopicPartition, list[RawRecord]] | None = None) -> None:
        """One batch: the records to process per partition (fetched, then handed over by an
        upstream node: :mod:`doa.engines.chain`), the node's step on each, the outputs
        acknowledged (and handed to chained nodes), then the offsets committed."""
        assert self._producer is not None and self._consumer is not None
        by_partition = self._collect(data)
        if handed:
            now = time.monotonic()
            for tp, raws in self.handoff.collect(handed, self._ready, self._expected).items():
                by_partition[tp.partition].extend(raws)
                self._fetched[tp] = raws[-1].offset + 1
                self.stats.handed_in += len(raws)
                if self._pauses is not None:
                    self._pauses.took(tp, raws[-1].offset + 1, now)
            self.stats.handed_ignored += len(self.handoff.gaps)
            if self._pauses is not None and self.handoff.gaps:
                self._pauses.resume(self.handoff.gaps)
        if len(self.node.reads) > 1:
            by_partition = self._merge(by_partition)
        outputs: list[OutRecord] = []
        for p, raws in by_partition.items():
            if raws:
                outputs.extend(self._tagged(p, self._step(p, raws)))
        self._batch_done()
        outputs = self._written.drop(outputs)  # a restart's replay: not those in the log
        if outputs:  # acknowledged before commit and snapshot (a failure: none follows)
            try:
                offsets = await deliver(self._producer, outputs, self.stats, self.node.name,
                                        self._limits)
            except Exception as exc:
                self.failure = exc
                raise
            self._delivered(outputs, offsets)
            if self.chained:
                hand_over(self.chained, outputs, offsets)
            if self.stats.first_output_s is None:
                self.stats.first_output_s = time.monotonic() - self._started
        await self._commit(self._consumer)

    def _collect(self, data: dict[TopicPartition, list[Any]]) -> dict[int, list[RawRecord]]:
        """The fetched records to process, per partition: none from a partition whose
        assignment is not loaded yet or that must be fetched again
        (:func:`doa.engines.gaps.check_gaps`), none before the offset the state expects."""
        by_partition: dict[int, list[RawRecord]] = defaultdict(list)
        for tp, messages in data.items():
            if tp.partition not in self._ready or not messages:
                continue  # fetched before the assignment was loaded; re-read after the seek
            expected = self._expected(tp)
            if made_anew(self.node.name, tp, expected, messages):
                expected = None  # its records are new: none is covered by the state
            if not check_gaps(self._consumer, self._refetched, self.node.name, tp, expected,
                              messages):
                continue
            by_partition[tp.partition].extend(
                RawRecord(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value,
                          tuple(m.headers or ())) for m in messages
                if expected is None or m.offset >= expected)
            self._fetched[tp] = max(expected or 0, messages[-1].offset + 1)
        return by_partition

    def _expected(self, tp: TopicPartition) -> int | None:
        """The next offset of ``tp`` to process: after the last one fetched or handed over
        (records may wait in the merge buffer), or after an assignment the snapshot's."""
        return self._fetched.get(tp, self.positions.get(tp.partition, {}).get(tp.topic))

    def _step(self, p: int, raws: list[RawRecord]) -> list[OutRecord]:
        """Run partition ``p``'s records through the node: its state, positions and the stats
        move on; returns the outputs."""
        if p not in self.states:
            self.states[p] = self.node.state()
            self.positions.setdefault(p, {})
        result = self.runner.process(self.states[p], raws)
        self.states[p] = result.state
        for r in raws:
            self.positions[p][r.stream] = r.offset + 1
        self._since_snapshot[p] += len(raws)
        st = self.stats
        st.records_in += result.records_in
        st.records_out += result.records_out
        st.dead_letters += result.dead_letters
        return result.outputs

    def _batch_done(self) -> None:
        st = self.stats
        st.batches += 1
        st.last_batch_at = time.monotonic()
        if st.first_batch_at is None:
            st.first_batch_at = st.last_batch_at
        self._count_uncommitted()

    def _caught_up(self, stream: str, p: int, asking: tuple[Any, ...] = ()) -> bool:
        assert self._consumer is not None
        tp = TopicPartition(stream, p)
        high = self._consumer.highwater(tp)
        # Nothing fetched since the assignment: the consumer sits where the snapshot left it
        # (a partition read to its end before the restart is caught up).
        at = self._fetched.get(tp, self.positions.get(p, {}).get(stream, 0))
        return high is not None and at >= high and \
            self.handoff.upstream_idle(stream, (*asking, self))

    def idle(self, asking: tuple[Any, ...] = ()) -> bool:
        """Nothing in flight: no batch in hand, nothing handed over or merged waiting, every
        assigned input fetched to the broker's last known end (a chained one: its upstream
        idle too). A chained downstream's merge asks (``Handoff.upstream_idle``); a node
        among ``asking`` (a cycle led back to it) counts as idle."""
        consumer = self._consumer
        if self in asking:
            return True
        if consumer is None:
            return not self._busy  # stopped: it will not write again
        if self._busy or self.handoff.pending or any(self._merges.values()):
            return False
        return all(self._caught_up(tp.topic, tp.partition, asking)
                   for tp in consumer.assignment())

    def _offsets(self) -> dict[TopicPartition, int]:
        """The offsets to commit: those the latest snapshot covers, never more (a restart
        restores that snapshot; an offset committed ahead of it would let a fetch prefetched
        from the committed offset skip records the state has not seen)."""
        return {TopicPartition(s, p): o for p, pos in self.covered.items()
                for s, o in pos.items()}

    def _count_uncommitted(self) -> None:
        self.stats.offsets_uncommitted = sum(1 for tp, o in self._offsets().items()
                                             if self._committed.get(tp) != o)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        moved = {tp: o for tp, o in self._offsets().items() if self._committed.get(tp) != o}
        if moved:
            try:  # waits for the group coordinator while the broker is away
                await consumer.commit(moved)
            except Exception as exc:  # a rebalance in progress: the snapshot holds offsets
                log.debug("commit failed (%s); snapshots still hold the offsets", exc)
            else:
                self._committed.update(moved)
        self._count_uncommitted()

    # -- snapshots -----------------------------------------------------------------------------
    async def _maybe_snapshot(self) -> None:
        now = time.monotonic()
        taken = False
        for p in list(self.states):
            if self._snapshot_due(p, now):
                if not await self._try_snapshot(p):
                    return  # the broker is away: try again when next due
                taken = True
        if taken and self._consumer is not None:
            # An idle node snapshots once its interval passes: commit what that snapshot
            # covers now, not at the next batch, so its group's lag reads 0 while it idles.
            await self._commit(self._consumer)

    async def _snapshot_all(self) -> None:
        for p in list(self.states):
            if self._since_snapshot[p] > 0 and not await self._try_snapshot(p):
                break
        self._account()

    async def _try_snapshot(self, p: int) -> bool:
        """Snapshot partition ``p``; False if the broker did not take it (nothing is lost: a
        restart replays the input from the last snapshot, the outputs with the same ids)."""
        try:
            await self.snapshot(p)
        except KafkaError as exc:
            retriable(exc)
            log.info("node %s: snapshot of partition %s not written (%s)", self.node.name, p,
                     type(exc).__name__)
            return False
        return True

    async def _send_state(self, key: bytes, value: bytes, p: int) -> None:
        assert self._producer is not None  # one record per batch: the end offset stays exact
        await (await self._producer.send(self.state_topic, value, key=key, partition=p))

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            await self._assigned(partitions)

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        assert self._consumer is not None
        if self._pauses is not None:
            self._pauses.forget(partitions)
        snaps = await self.load(sorted({tp.partition for tp in partitions}))
        for p, snap in snaps.items():
            if snap is None:
                self.states[p] = self.node.state()
                self.positions[p] = {s: 0 for s in self.node.reads}
                self.covered[p] = dict(self.positions[p])
                self.seq[p] = 0
                for s in self.node.reads:
                    tp = TopicPartition(s, p)
                    if tp in partitions:
                        await self._consumer.seek_to_beginning(tp)
            else:
                self.states[p] = snap.state
                self.positions[p] = dict(snap.offsets)
                self.covered[p] = dict(snap.offsets)
                self.seq[p] = snap.seq
                for s in self.node.reads:
                    tp = TopicPartition(s, p)
                    if tp in partitions:
                        if s in snap.offsets:
                            self._consumer.seek(tp, snap.offsets[s])
                        else:
                            await self._consumer.seek_to_beginning(tp)
            self._snapshot_taken(p)
            for s in self.node.reads:
                tp = TopicPartition(s, p)
                self._fetched.pop(tp, None)
                self._refetched.pop(tp, None)
                self._committed.pop(tp, None)
            self._merges.pop(p, None)
            self._ready.add(p)
            self.stats.partitions = len(self._ready)
            log.info("node %s: partition %s from %s", self.node.name, p,
                     f"snapshot {snap.seq} at {snap.offsets}" if snap else "the beginning")
        await self._restart_reads(snaps)  # before any record of them is taken (the lock)

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            await self._revoked(partitions)

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        self._ready -= {tp.partition for tp in partitions}
        if self._pauses is not None:
            self._pauses.forget(partitions)
        self.stats.partitions = len(self._ready)
        gone = sorted({tp.partition for tp in partitions} & set(self.states))
        for p in gone:
            if self._since_snapshot[p] > 0 and self._producer is not None:
                await self._try_snapshot(p)  # if not: the next owner replays from the last
        if self._consumer is not None:
            await self._commit(self._consumer)
        for p in gone:
            del self.states[p]
            self.positions.pop(p, None)
            self.covered.pop(p, None)
            self._merges.pop(p, None)
