"""The default engine: a batch loop on aiokafka (``getmany`` → step → produce → snapshot).

Per node and process: one consumer in the node's group (``TOPOLOGY.NODE``), one producer, a
state per assigned input partition. On assignment the worker loads each partition's latest
snapshot and seeks its inputs to the offsets the snapshot covers (no snapshot: the beginning,
so state is always a function of the log prefix consumed). Outputs are acknowledged before
offsets are committed and before a snapshot claims to cover them; on revocation and on stop
the worker snapshots first (assignments, snapshots and commits: :mod:`doa.engines.group`).
Delivery is at-least-once with stable event ids; a delivery that failed for good keeps every
later snapshot from covering its batch (:meth:`doa.engines.partitioned.PartitionedNode.snapshot`).

While the broker is away the worker waits: an output the broker did not acknowledge is sent
again (same event id) until it is, a snapshot is retried when next due, and a commit waits for
the group coordinator. ``NodeStats`` says at any moment what a stop would leave undone
(:mod:`doa.engines.outage` bounds the stop and reports it). An input offset gap is fetched
again once
from the offset the state expects; a gap that is really in the log (compaction, transaction
markers) is reported at WARNING with the partition and offsets, never skipped silently.

An input stream that gains partitions while the node runs (``kafka-topics --alter``) stops
it within seconds (the consumer's metadata is refreshed every 5 s, not aiokafka's 5 min):
what it processed is snapshotted and committed, the added partitions are never loaded, and
``doa run`` exits 1 with one line naming the node, the stream and both counts
(:func:`doa.cluster.admin.outgrown`).

A broker that comes back without the node's topics (or a topic deleted): the node says so
once, leaves its group until they are there again, then loads the state the broker holds
(:mod:`doa.engines.vanished`); its clients never create a topic (:mod:`doa.engines.nocreate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import InvalidSessionTimeoutError

from doa.cluster.admin import batch_limits
from doa.cluster.security import aiokafka_options
from doa.engines import EngineSettings, NodeStats, session_refused
from doa.engines.chain import Fetch, Handoff, Pauses, hand_over
from doa.engines.delivery import deliver
from doa.engines.gaps import (  # noqa: F401 (tests)
    GAP_REFETCHES,
    check_gaps,
    made_anew,
    report_deleted,
)
from doa.engines.group import GroupMember
from doa.engines.nocreate import no_auto_create
from doa.engines.outage import stop_client
from doa.engines.partitioned import METADATA_MAX_AGE_MS, Rebalance
from doa.node import Node
from doa.runtime.runner import OutRecord, RawRecord
from doa.topology.topology import Topology

# A batch's outputs to one partition usually fit one record batch (doa.engines.delivery): one
# request per partition instead of one per 16 KiB (aiokafka's default), far below the 1 MB a
# broker takes by default.
OUTPUT_BATCH_BYTES = 256 * 1024


class NodeWorker(GroupMember):
    """Runs one node against a broker until ``stop`` is set (its partitions' state, snapshots
    and commits: :class:`~doa.engines.group.GroupMember`)."""

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        super().__init__(topology, node, address, settings, stats)
        self._limits: dict[str, int] = {}
        self._started = time.monotonic()
        self._abandoned = False  # cancelled after the shutdown grace: no more network on close
        self.handoff = Handoff()  # records an upstream node in this process hands over
        self.chained: dict[str, list[Handoff]] = {}  # output stream -> downstream hand-offs
        self._busy = True  # a batch in hand (and until started): see idle()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        # Compile (kernels: 0.3-2 s) before joining the group, off the loop: heartbeats of
        # other workers in this process keep going.
        self.stats.warm_up_s = await asyncio.get_running_loop().run_in_executor(
            None, self.runner.start)
        s = self.settings
        report_deleted()
        self._producer = no_auto_create(AIOKafkaProducer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            linger_ms=s.linger_ms, acks=s.acks,
            enable_idempotence=False, max_request_size=2 * s.chunk_size + 65536,
            max_batch_size=OUTPUT_BATCH_BYTES, client_id=f"doa-{self.node.name}"))
        await self._producer.start()
        # a topic taking smaller batches than ours gets batches of its size (doa.engines.delivery)
        self._limits = await batch_limits(self.address, self.topology.outputs(self.node.name))
        self._reader = no_auto_create(AIOKafkaConsumer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            enable_auto_commit=False, fetch_max_wait_ms=s.fetch_max_wait_ms,
            client_id=f"doa-{self.node.name}-state"))
        await self._reader.start()
        self._consumer = no_auto_create(AIOKafkaConsumer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            group_id=f"{self.topology.name}.{self.node.name}",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            fetch_max_wait_ms=s.fetch_max_wait_ms, client_id=f"doa-{self.node.name}",
            **{"metadata_max_age_ms": METADATA_MAX_AGE_MS, **s.extra_consumer}))
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
                data = await fetch.next() if not self._away else await self._out(stop)
                self._busy = bool(data)
                async with self._lock:
                    await self._stop_if_outgrown()  # an input grew; topics gone or back
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

    async def _out(self, stop: asyncio.Event) -> dict[TopicPartition, list[Any]]:
        """Nothing, after a second (or the stop) out of the group: a consumer without a
        subscription waits in ``getmany`` for an assignment that never comes."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
        return {}

    async def close(self) -> None:
        self.runner.letters.flush(final=True)  # a dead-letter summary still waiting: said
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
        st.skipped += result.skipped
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
