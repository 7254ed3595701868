"""The aiokafka engine's worker in its consumer group: assignments, snapshots, commits.

:class:`GroupMember` is what :class:`doa.engines.kafka.NodeWorker` does besides its batch loop.
On assignment it loads each partition's latest snapshot and seeks the partition's inputs to
the offsets that snapshot covers (no snapshot: the beginning); on revocation it snapshots
first. A snapshot is taken when due (:meth:`~doa.engines.partitioned.PartitionedNode.snapshot`)
and retried when next due if the broker did not take it; only offsets the latest snapshot
covers are committed. Its log lines go to the engine's logger, ``doa.engines.kafka``.

Its stats are :class:`GroupStats`: the counters plus what the group last assigned, per input
stream (``doa run``'s partitions line, the process's description on ``_doa_topologies``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from doa.engines import EngineSettings, NodeStats
from doa.engines.chain import Pauses
from doa.engines.delivery import retriable
from doa.engines.partitioned import PartitionedNode, Rebalance
from doa.engines.vanished import TopicWatch
from doa.errors import DoaError, first_line
from doa.node import Node
from doa.topology.topology import Topology

log = logging.getLogger("doa.engines.kafka")  # the engine's logger: its users filter on it
COMMIT_WAIT_S = 10.0  # a commit not done by then is done at the next (snapshots hold offsets)


@dataclass
class GroupStats(NodeStats):
    """A node's counters in this process, and the partitions of each input stream its group
    assigned it at the last rebalance (None: no assignment yet; a stream's empty tuple: none
    of it, e.g. more processes than partitions)."""

    assigned: dict[str, tuple[int, ...]] | None = None


class GroupMember(PartitionedNode):
    """A node's input partitions as its consumer group assigns and revokes them; the engine
    (:class:`doa.engines.kafka.NodeWorker`) creates the clients and runs the batches."""

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        super().__init__(topology, node, address, settings,
                         GroupStats() if stats is None else stats)
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._refetched: dict[TopicPartition, tuple[int, int]] = {}  # (offset, seeks)
        self._committed: dict[TopicPartition, int] = {}  # offsets the group holds (as we know)
        self._fetched: dict[TopicPartition, int] = {}  # next offset expected from a fetch
        self._lock = asyncio.Lock()  # rebalance callbacks never interleave with a batch
        self._pauses: Pauses | None = None  # inputs not fetched while hand-overs bring them
        # inputs (or the state topic) gone from the broker, and back
        self._topics = TopicWatch(node.name, address, node.reads, self.state_topic)
        self._failed: DoaError | None = None  # an assignment that could not be loaded

    # -- commits -------------------------------------------------------------------------------
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
        moved = {tp: o for tp, o in self._offsets().items() if self._committed.get(tp) != o
                 and consumer.partitions_for_topic(tp.topic)}  # a topic gone: not committable
        if moved:
            try:  # waits for the group coordinator while the broker is away, not for ever:
                # aiokafka retries a commit to a topic the broker no longer has without end
                await asyncio.wait_for(consumer.commit(moved), COMMIT_WAIT_S)
            except Exception as exc:  # a rebalance in progress: the snapshot holds offsets
                log.debug("commit failed (%r); snapshots still hold the offsets", exc)
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

    def _account(self) -> None:
        """Keep ``stats`` saying how many partitions have state not yet snapshotted."""
        self.stats.unsnapshotted = sum(1 for p in self.states if self._since_snapshot[p] > 0)

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

    # -- assignments ---------------------------------------------------------------------------
    def _input_counts(self) -> dict[str, int]:
        """Each input stream's partitions as the consumer's metadata has them (0: unknown)."""
        assert self._consumer is not None
        return {s: len(self._consumer.partitions_for_topic(s) or ()) for s in self.node.reads}

    async def _stop_if_outgrown(self) -> None:
        """Raise ``refusal`` once an input stream has more partitions than declared (an
        assignment or the consumer's metadata said so: :meth:`_outgrown`), after snapshotting
        and committing what the node processed. The batch loop calls it under the lock, so no
        rebalance callback runs meanwhile."""
        if self._failed is not None:
            raise self._failed
        await self._mind_topics()
        if not self._outgrown((), self._input_counts()):
            return
        await self._snapshot_all()
        assert self._consumer is not None and self.refusal is not None
        await self._commit(self._consumer)
        raise self.refusal

    async def assigned(self, partitions: set[TopicPartition]) -> None:
        """:meth:`_assigned` under the lock. An error there (a snapshot that does not
        unpickle, a state topic that cannot be read) is kept for the batch loop to raise:
        aiokafka only logs what its rebalance callback raises, and the node sat idle, silent.
        The group's whole assignment comes here (aiokafka's rebalances are eager): kept in the
        stats, whether it loads or not."""
        if isinstance(self.stats, GroupStats):
            self.stats.assigned = {s: tuple(sorted(tp.partition for tp in partitions
                                                   if tp.topic == s)) for s in self.node.reads}
        async with self._lock:
            try:
                await self._assigned(partitions)
            except Exception as exc:
                where = sorted({tp.partition for tp in partitions})
                text = (str(exc) if isinstance(exc, DoaError) else
                        f"loading the state of partitions {where} failed: "
                        f"{first_line(exc, kind=True)}")
                self._failed = DoaError(f"node {self.node.name!r}: {text}")
                self._failed.__cause__ = exc

    async def _assigned(self, partitions: set[TopicPartition]) -> None:
        assert self._consumer is not None
        if self._pauses is not None:
            self._pauses.forget(partitions)
        if self._outgrown(partitions, self._input_counts()):
            return  # none of them loaded: run() stops with the refusal
        # Asked before the load: a broker that came back without its data has neither the
        # inputs nor the state topic, and reading a snapshot from a state topic that is not
        # there waits until one is made, under the lock, the batch loop stopped.
        if not await self._topics.there(self._reader):
            self._topics.leaving = True  # none loaded: back in the group once they are there
            return
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

    async def _mind_topics(self) -> None:
        """Out of the group while the broker lacks the node's topics, back in once it has them
        all (asked every second). Its consumer would otherwise keep partitions of topics that
        are gone (a group's assignment can come from metadata older than the broker's
        return), and aiokafka's fetcher asks for their metadata without pause (half a core,
        a thousand log lines a second, on the embedded broker)."""
        assert self._consumer is not None
        watch = self._topics
        if watch.leaving:
            watch.leaving, watch.away = False, set(self.node.reads)
            self._consumer.unsubscribe()
            if isinstance(self.stats, GroupStats):  # out of the group: it holds none
                self.stats.assigned = {s: () for s in self.node.reads}
        elif watch.away is not None and watch.due() and await watch.there(self._reader):
            topics, watch.away = watch.away, None
            self._consumer.subscribe(sorted(topics), listener=Rebalance(self))

    @property
    def _away(self) -> bool:
        """Out of the group until the broker has the node's topics again."""
        return self._topics.away is not None

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
