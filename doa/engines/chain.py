"""Chaining co-located nodes: an upstream node hands its acknowledged outputs to a downstream
node in the same process, so the downstream does not wait for the broker to bring them back.

As Flink chains operators, but with the log kept whole: the upstream still produces every
output to its stream (lineage, replay, other readers see it), and only after the broker has
acknowledged a batch (so each output's offset is known) does it hand the same records, as the
downstream would have fetched them, to each downstream worker in this process that reads the
stream (:func:`link`). The downstream processes them at once, exactly as fetched records:

- a handed record is taken only if it is the very next offset the downstream's state expects
  for its input partition (:meth:`Handoff.collect`); records it already has are dropped, and a
  hand-over that starts after a gap (another process wrote to the partition, a retried batch
  left a duplicate, the partition was reassigned) is ignored: the consumer fetches those
  records from the broker as it always does;
- its consumer keeps fetching; what it brings that a hand-over already delivered is dropped
  by the same offset check, so each input record is processed once whichever path brings it
  first;
- state, positions, snapshots and commits are the node's own: a chained node recovers after
  ``kill -9`` exactly as an unchained one (its snapshot says which offsets it covers, and the
  consumer reads from there).

Handed records are the produced bytes; the downstream decodes them as it decodes fetched ones
(a decoded hand-over would save ~2 µs of a ~5 µs decode per record, measured, and need a second
path to equal what a replay decodes). Chaining is on by default (``DOA_CHAIN=0`` turns it off
for a run, :meth:`doa.topology.topology.Topology.unchain` keeps one node out; the Faust engine
does not chain).

A chained node sits at the head of its input: the broker has nothing more of it while its
upstream is still computing (or waiting for the acknowledgements of) the next records. A node
merging that input with another (a learner's features and labels, :mod:`doa.runtime.merge`)
must not take it as caught up then, or it would release the other stream's records ahead of
them, while a replay, reading the log whole, merges in timestamp order: a replayed output
could differ from the first (the compose kill test saw 28 of 20,000 outcomes do so before
this). So a chained input is caught up only when every upstream here handing it over is idle
(:meth:`Handoff.upstream_idle`): no batch in hand, nothing waiting, its own inputs fetched to
the broker's end.

Examples
--------
>>> from aiokafka import TopicPartition
>>> from doa.runtime.runner import RawRecord
>>> h = Handoff()
>>> tp = TopicPartition("features", 0)
>>> h.offer(tp, [RawRecord("features", 0, o, 0, None, b"", ()) for o in (5, 6, 7)])
>>> taken = h.collect(h.take(), ready={0}, expected=lambda tp: 6)
>>> [r.offset for r in taken[tp]]  # offset 5 was already processed
[6, 7]
>>> h.offer(tp, [RawRecord("features", 0, 9, 0, None, b"", ())])
>>> h.collect(h.take(), ready={0}, expected=lambda tp: 8)  # 8 is missing: fetch it instead
{}
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from aiokafka import TopicPartition

from doa.cluster.fetchwait import FetchWait, apply_aiokafka
from doa.runtime.runner import OutRecord, RawRecord


class Handoff:
    """Records handed to one downstream worker, per input partition, until it takes them."""

    def __init__(self) -> None:
        self.pending: dict[TopicPartition, list[RawRecord]] = {}
        self.wake = asyncio.Event()
        self.linked = False  # an upstream in this process hands records over (see link)
        self.gaps: set[TopicPartition] = set()  # partitions whose last hand-over was ignored
        # stream -> whether each node in this process handing it over has nothing in flight,
        # given the nodes already asking (a cycle through a drift detector leads back to them)
        self.upstreams: dict[str, list[Callable[[tuple[Any, ...]], bool]]] = {}

    def upstream_idle(self, stream: str, asking: tuple[Any, ...] = ()) -> bool:
        """Whether every upstream node here that hands ``stream`` over has nothing in flight:
        a chained input read to its head is caught up only then (its next records may still
        be in the upstream's hands, not yet in the log). ``asking``: the nodes whose question
        this is; met again upstream (a cycle), they count as idle: a node asking is in its
        own batch, every output it wrote before already handed over."""
        return all(idle(asking) for idle in self.upstreams.get(stream, ()))

    def offer(self, tp: TopicPartition, records: Sequence[RawRecord]) -> None:
        """Queue ``records`` (consecutive offsets of ``tp``) and wake the worker."""
        queued = self.pending.get(tp)
        if queued is None:
            self.pending[tp] = list(records)
        else:
            queued.extend(records)
        self.wake.set()

    def take(self) -> dict[TopicPartition, list[RawRecord]]:
        """Everything queued, emptied."""
        pending, self.pending = self.pending, {}
        self.wake.clear()
        return pending

    def collect(self, handed: dict[TopicPartition, list[RawRecord]], ready: Iterable[int],
                expected: Callable[[TopicPartition], int | None]
                ) -> dict[TopicPartition, list[RawRecord]]:
        """The handed records to process: per ready partition, those from the offset the
        state expects next, if the hand-over reaches it without a gap."""
        ready = set(ready)
        out: dict[TopicPartition, list[RawRecord]] = {}
        self.gaps = set()
        for tp, records in handed.items():
            at = expected(tp) if tp.partition in ready else None
            if at is None:
                continue  # not ours (any more), or not loaded yet: the consumer fetches it
            fresh = [r for r in records if r.offset >= at]
            if not fresh:
                continue
            if fresh[0].offset != at:
                self.gaps.add(tp)
                continue
            out[tp] = fresh
        return out


class Fetch:
    """A worker's next input: what its consumer fetches or, for a worker an upstream hands
    records to, whichever comes first of a fetch and a hand-over. A fetch still waiting when a
    hand-over comes is kept for the next call (never two ``getmany`` at once). The consumer's
    fetch wait stretches while the broker starves it (:mod:`doa.cluster.fetchwait`)."""

    def __init__(self, consumer: Any, max_records: int, handoff: Handoff,
                 wait_ms: int = 10) -> None:
        self.consumer = consumer
        self.max_records = max_records
        self.handoff = handoff
        self.wait = FetchWait(wait_ms)
        self._task: asyncio.Future[Any] | None = None

    async def next(self) -> dict[TopicPartition, list[Any]]:
        """The fetched records (possibly none); hand-overs wait in ``handoff.pending``."""
        if not self.handoff.linked:
            data: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
                timeout_ms=100, max_records=self.max_records)
            apply_aiokafka(self.consumer, self.wait, bool(data))
            return data
        if self._task is None:
            self._task = asyncio.ensure_future(self.consumer.getmany(
                timeout_ms=100, max_records=self.max_records))
        if not self.handoff.pending:
            waiter = asyncio.ensure_future(self.handoff.wake.wait())
            try:
                await asyncio.wait({self._task, waiter}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
        if not self._task.done():
            return {}
        task, self._task = self._task, None
        result: dict[TopicPartition, list[Any]] = task.result()
        apply_aiokafka(self.consumer, self.wait, bool(result))
        return result

    def cancel(self) -> None:
        """Drop a fetch still waiting (the worker stops)."""
        if self._task is not None:
            self._task.cancel()
            self._task = None


class Pauses:
    """The input partitions a worker's consumer does not fetch because hand-overs bring them:
    the broker does not send, and the client does not unpack, records the worker already has.

    A partition is paused when a hand-over of it is taken, its fetch position moved to the next
    offset each time (so a fetch resumes exactly there). It is fetched again as soon as a
    hand-over of it is ignored (a gap: someone else wrote to it, or a retried batch), and when
    no hand-over of it came for ``RESUME_AFTER_S`` (its upstream here stopped or lost the
    partition, another process writes it now): records nobody hands over are never stranded.
    """

    RESUME_AFTER_S = 1.0

    def __init__(self, consumer: Any) -> None:
        self.consumer = consumer
        self.last: dict[TopicPartition, float] = {}  # paused partition -> last hand-over taken

    def took(self, tp: TopicPartition, next_offset: int, now: float) -> None:
        """A hand-over of ``tp`` was processed up to ``next_offset``."""
        consumer = self.consumer
        if tp not in consumer.assignment():
            return
        if tp not in self.last:
            consumer.pause(tp)
        consumer.seek(tp, next_offset)
        self.last[tp] = now

    def resume(self, tps: Iterable[TopicPartition]) -> None:
        """Fetch ``tps`` again (those still assigned)."""
        assigned = self.consumer.assignment()
        for tp in tps:
            if self.last.pop(tp, None) is not None and tp in assigned:
                self.consumer.resume(tp)

    def check(self, now: float) -> None:
        """Fetch again the partitions no hand-over has brought for ``RESUME_AFTER_S``."""
        if self.last:
            self.resume([tp for tp, t in self.last.items() if now - t > self.RESUME_AFTER_S])

    def forget(self, tps: Iterable[TopicPartition]) -> None:
        """``tps`` were assigned or revoked: the consumer starts them unpaused."""
        for tp in tps:
            self.last.pop(tp, None)


def hand_over(links: dict[str, list[Handoff]], outputs: Sequence[OutRecord],
              offsets: Sequence[int]) -> None:
    """Give each downstream the acknowledged ``outputs`` (their ``offsets`` in the log, -1 when
    unknown) of the streams it reads, as it would fetch them."""
    grouped: dict[TopicPartition, list[RawRecord]] = {}
    for out, offset in zip(outputs, offsets, strict=True):
        if offset < 0 or out.stream not in links:
            continue
        tp = TopicPartition(out.stream, out.partition)
        records = grouped.get(tp)
        if records is None:
            records = grouped[tp] = []
        records.append(RawRecord(out.stream, out.partition, offset, out.timestamp, out.key,
                                 out.value, out.headers))
    for tp, records in grouped.items():
        for handoff in links[tp.topic]:
            handoff.offer(tp, records)


def link(workers: Sequence[Any], enabled: bool = True) -> list[tuple[str, str, str]]:
    """Chain every worker that can hand over (``chained`` and ``handoff`` attributes: the
    kafka engine's) to the workers in ``workers`` reading a stream it writes, unless the
    downstream node is unchained. Returns ``(upstream, stream, downstream)`` per link.

    Examples
    --------
    >>> from types import SimpleNamespace as NS
    >>> def worker(name, reads, writes, chain=True):
    ...     node = NS(name=name, reads=reads, writes=writes, options={"chain": chain})
    ...     return NS(node=node, chained={}, handoff=Handoff())
    >>> up, down = worker("kernel", ("txns",), ("features",)), worker("scorer", ("features",), ())
    >>> link([up, down])
    [('kernel', 'features', 'scorer')]
    >>> up.chained["features"] == [down.handoff]
    True
    >>> link([worker("a", (), ("s",)), worker("b", ("s",), (), chain=False)])
    []
    """
    links: list[tuple[str, str, str]] = []
    if not enabled:
        return links
    for up in workers:
        if not hasattr(up, "chained"):
            continue
        for down in workers:
            if down is up or not hasattr(down, "handoff") or \
                    not down.node.options.get("chain", True):
                continue
            for stream in up.node.writes:
                if stream in down.node.reads:
                    up.chained.setdefault(stream, []).append(down.handoff)
                    if hasattr(up, "idle"):
                        down.handoff.upstreams.setdefault(stream, []).append(up.idle)
                    down.handoff.linked = True
                    links.append((up.node.name, stream, down.node.name))
    return links
