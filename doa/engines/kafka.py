"""The default engine: a batch loop on aiokafka (``getmany`` → step → produce → snapshot).

Per node and process: one consumer in the node's group (``TOPOLOGY.NODE``), one producer, a
state per assigned input partition. On assignment the worker loads each partition's latest
snapshot and seeks its inputs to the offsets the snapshot covers (no snapshot: the beginning,
so state is always a function of the log prefix consumed). Outputs are acknowledged before
offsets are committed and before a snapshot claims to cover them; on revocation and on stop
the worker snapshots first. Delivery is at-least-once with stable event ids.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import InvalidSessionTimeoutError

from doa.engines import EngineSettings, NodeStats, session_refused
from doa.engines.state_io import PartitionedNode
from doa.merge import TimestampMerge
from doa.runtime import RawRecord
from doa.security import aiokafka_options
from doa.topology import Node, Topology

log = logging.getLogger(__name__)


class NodeWorker(PartitionedNode):
    """Runs one node against a broker until ``stop`` is set."""

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        super().__init__(topology, node, address, settings, stats)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._started = time.monotonic()
        self._ready: set[int] = set()  # partitions whose snapshot is loaded and inputs seeked
        self._gap_ok: set[TopicPartition] = set()  # re-seeked once after a stale prefetch
        self._fetched: dict[TopicPartition, int] = {}  # next offset expected from a fetch
        self._merges: dict[int, TimestampMerge] = {}  # multi-input nodes: per partition
        self._lock = asyncio.Lock()  # rebalance callbacks never interleave with a batch

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> None:
        # Compile (kernels: 0.3-2 s) before joining the group, off the loop: heartbeats of
        # other workers in this process keep going.
        self.stats.warm_up_s = await asyncio.get_running_loop().run_in_executor(
            None, self.runner.start)
        s = self.settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.address, **aiokafka_options(self.address),
            linger_ms=s.linger_ms, acks=s.acks,
            enable_idempotence=False, max_request_size=2 * s.chunk_size + 65536,
            client_id=f"doa-{self.node.name}")
        await self._producer.start()
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
        self._consumer.subscribe(list(self.node.reads), listener=_Listener(self))
        try:
            await self._consumer.start()  # returns once the first assignment is loaded
        except InvalidSessionTimeoutError as e:
            raise session_refused(self.address, self.node.name, s.session_timeout_ms) from e

    async def run(self, stop: asyncio.Event) -> None:
        """Process batches until ``stop`` is set, then snapshot, commit and leave the group."""
        assert self._consumer is not None
        try:
            while not stop.is_set():
                data = await self._consumer.getmany(timeout_ms=100,
                                                    max_records=self.settings.max_records)
                async with self._lock:
                    if data or any(self._merges.values()):
                        await self._process(data)
                    await self._maybe_snapshot()
        finally:
            await self.close()

    async def close(self) -> None:
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                try:
                    await self._snapshot_all()
                    await self._commit(consumer)
                finally:
                    await consumer.stop()
        finally:
            for client in (self._producer, self._reader):
                if client is not None:
                    await client.stop()
            self._producer = self._reader = None

    # -- the loop ------------------------------------------------------------------------------
    async def _process(self, data: dict[TopicPartition, list[Any]]) -> None:
        assert self._producer is not None and self._consumer is not None
        by_partition: dict[int, list[RawRecord]] = defaultdict(list)
        for tp, messages in data.items():
            if tp.partition not in self._ready or not messages:
                continue  # fetched before the assignment was loaded; re-read after the seek
            # The next offset a fetch should bring: after the last one fetched (records may wait
            # in the merge buffer), or after the assignment the offset the snapshot covers.
            expected = self._fetched.get(tp, self.positions.get(tp.partition, {}).get(tp.topic))
            if expected is not None and messages[0].offset > expected and tp not in self._gap_ok:
                # Prefetched from another position (e.g. the committed offset) before our
                # seek: processing it would skip records the state has not seen. Seek again;
                # if the log really has a gap there (compaction, markers), accept it next time.
                self._gap_ok.add(tp)
                self._consumer.seek(tp, expected)
                continue
            by_partition[tp.partition].extend(
                RawRecord(m.topic, m.partition, m.offset, m.timestamp, m.key, m.value,
                          tuple(m.headers or ())) for m in messages
                if expected is None or m.offset >= expected)
            self._fetched[tp] = max(expected or 0, messages[-1].offset + 1)
        if len(self.node.reads) > 1:
            by_partition = self._merge(by_partition)
        pending = []
        for p, raws in by_partition.items():
            if not raws:
                continue
            if p not in self.states:
                self.states[p] = self.node.state()
                self.positions.setdefault(p, {})
            result = self.runner.process(self.states[p], raws)
            self.states[p] = result.state
            for out in result.outputs:
                pending.append(await self._producer.send(
                    out.stream, out.value, key=out.key, partition=out.partition,
                    timestamp_ms=out.timestamp, headers=list(out.headers)))
            for r in raws:
                self.positions[p][r.stream] = r.offset + 1
            self._since_snapshot[p] += len(raws)
            st = self.stats
            st.records_in += result.records_in
            st.records_out += result.records_out
            st.dead_letters += result.dead_letters
        self.stats.batches += 1
        now = time.monotonic()
        if self.stats.first_batch_at is None:
            self.stats.first_batch_at = now
        self.stats.last_batch_at = now
        if pending:
            await asyncio.gather(*pending)  # acknowledged before commit and snapshot
            if self.stats.first_output_s is None:
                self.stats.first_output_s = time.monotonic() - self._started
        await self._commit(self._consumer)

    def _merge(self, fetched: dict[int, list[RawRecord]]) -> dict[int, list[RawRecord]]:
        """Co-partitioned inputs in timestamp order, deterministically (see doa.merge)."""
        assert self._consumer is not None
        consumer = self._consumer
        now = time.monotonic() * 1000
        released: dict[int, list[RawRecord]] = {}
        for p in self._ready:
            merge = self._merges.get(p)
            if merge is None:
                merge = self._merges[p] = TimestampMerge(self.node.reads,
                                                         self.settings.max_idle_ms)
            merge.add(fetched.get(p, ()))

            def caught_up(stream: str, p: int = p) -> bool:
                tp = TopicPartition(stream, p)
                high = consumer.highwater(tp)
                return high is not None and self._fetched.get(tp, 0) >= high

            released[p] = merge.release(now, caught_up)
        return released

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        offsets = {TopicPartition(s, p): o for p, pos in self.positions.items()
                   for s, o in pos.items()}
        if offsets:
            try:
                await consumer.commit(offsets)
            except Exception as exc:  # a rebalance in progress: the snapshot holds offsets
                log.debug("commit failed (%s); snapshots still hold the offsets", exc)

    # -- snapshots -----------------------------------------------------------------------------
    async def _maybe_snapshot(self) -> None:
        now = time.monotonic()
        for p in list(self.states):
            if self._snapshot_due(p, now):
                await self.snapshot(p)

    async def _snapshot_all(self) -> None:
        for p in list(self.states):
            if self._since_snapshot[p] > 0:
                await self.snapshot(p)

    async def _send_state(self, key: bytes, value: bytes, p: int) -> None:
        assert self._producer is not None  # one record per batch: the end offset stays exact
        await (await self._producer.send(self.state_topic, value, key=key, partition=p))

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            await self._assigned(partitions)

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        assert self._consumer is not None
        for p in sorted({tp.partition for tp in partitions}):
            snap = await self.load(p)
            if snap is None:
                self.states[p] = self.node.state()
                self.positions[p] = {s: 0 for s in self.node.reads}
                self.seq[p] = 0
                for s in self.node.reads:
                    tp = TopicPartition(s, p)
                    if tp in partitions:
                        await self._consumer.seek_to_beginning(tp)
            else:
                self.states[p] = snap.state
                self.positions[p] = dict(snap.offsets)
                self.seq[p] = snap.seq
                for s in self.node.reads:
                    tp = TopicPartition(s, p)
                    if tp in partitions:
                        if s in snap.offsets:
                            self._consumer.seek(tp, snap.offsets[s])
                        else:
                            await self._consumer.seek_to_beginning(tp)
            self._snapshot_taken(p)
            self._gap_ok -= {TopicPartition(s, p) for s in self.node.reads}
            for s in self.node.reads:
                self._fetched.pop(TopicPartition(s, p), None)
            self._merges.pop(p, None)
            self._ready.add(p)
            log.info("node %s: partition %s from %s", self.node.name, p,
                     f"snapshot {snap.seq} at {snap.offsets}" if snap else "the beginning")

    async def revoked(self, partitions: set[TopicPartition]) -> None:
        async with self._lock:
            await self._revoked(partitions)

    async def _revoked(self, partitions: set[TopicPartition]) -> None:
        self._ready -= {tp.partition for tp in partitions}
        gone = sorted({tp.partition for tp in partitions} & set(self.states))
        for p in gone:
            if self._since_snapshot[p] > 0 and self._producer is not None:
                await self.snapshot(p)
        if self._consumer is not None:
            await self._commit(self._consumer)
        for p in gone:
            del self.states[p]
            self.positions.pop(p, None)
            self._merges.pop(p, None)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: NodeWorker) -> None:
        self.worker = worker

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.worker.revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.assigned(set(assigned))
