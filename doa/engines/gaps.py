"""Offsets missing from a fetch: a stale prefetch is fetched again, a real gap reported.

``refetched`` keeps, per partition, the offset sought and how many times: after
``GAP_REFETCHES`` seeks to the same offset the gap is believed (compaction, transaction
markers, records deleted), processed past and reported at WARNING, never skipped silently.

An offset the log no longer has (retention or DeleteRecords removed it; doa's streams keep
their records unless their config bounds them) makes the client read on from the log's start;
:func:`report_deleted` turns aiokafka's INFO line about it into one WARNING naming the stream,
partition and offset, once per offset. When the log starts again below that offset (it was
made anew), :func:`made_anew` says so and the node takes the new log's records.

Examples
--------
>>> from types import SimpleNamespace as M
>>> from aiokafka import TopicPartition
>>> class Consumer:
...     def seek(self, tp, offset): print("seek", tp.partition, offset)
>>> tp = TopicPartition("events", 0)
>>> check_gaps(Consumer(), {}, "count", tp, 3, [M(offset=5), M(offset=6)])
seek 0 3
False
>>> check_gaps(Consumer(), {}, "count", tp, 3, [M(offset=3), M(offset=4)])
True
>>> deleted = OutOfRange()
>>> record = logging.LogRecord("aiokafka.consumer.fetcher", logging.INFO, "", 0,
...     "Fetch offset %s is out of range for partition %s, resetting offset", (3, tp), None)
>>> deleted.filter(record), deleted.filter(record)  # reported once, then dropped
(False, False)
"""

from __future__ import annotations

import logging
from itertools import pairwise
from typing import Any, cast

from aiokafka import TopicPartition

log = logging.getLogger("doa.engines.kafka")  # the engine's logger: its users filter on it
GAP_REFETCHES = 5  # seeks back to the expected offset before a gap is believed and reported
FETCHER = "aiokafka.consumer.fetcher"


class OutOfRange(logging.Filter):
    """Drops aiokafka's "Fetch offset N is out of range ..., resetting offset" and says it
    once per partition and offset, at WARNING, as doa's own line."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, int]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith("Fetch offset %s is out of range") or \
                not isinstance(record.args, tuple) or len(record.args) != 2:
            return True
        offset, tp = cast("tuple[int, Any]", record.args)
        key = (getattr(tp, "topic", str(tp)), getattr(tp, "partition", -1), int(offset))
        _OUT_OF_RANGE.add(key)
        if key not in self.seen:
            self.seen.add(key)
            log.warning("%s partition %s: offset %s is not in the log: retention or "
                        "DeleteRecords removed it (the records before the log's start are lost "
                        "to the nodes reading it), or the log was made anew; reading on from "
                        "the log's start", *key)
        return False


def made_anew(node: str, tp: TopicPartition, expected: int | None,
              messages: list[Any]) -> bool:
    """Whether ``messages`` come from a log made anew below the offset ``expected``.

    A broker that lost its data (the embedded one keeps none; a Kafka node whose data
    directory went) or a topic deleted and created again: the client's position was out of
    range, it read on from the log's start (:class:`OutOfRange` saw it), and the records come
    with offsets below the one the node's state expects. They are new records, not ones the
    state covers: the node must take them, not skip them as a prefetch from before its seek.

    >>> from types import SimpleNamespace as M
    >>> tp = TopicPartition("events", 0)
    >>> _OUT_OF_RANGE.add(("events", 0, 70))
    >>> made_anew("count", tp, 70, [M(offset=0)]), made_anew("count", tp, 12, [M(offset=0)])
    (True, False)
    """
    if expected is None or messages[0].offset >= expected or \
            (tp.topic, tp.partition, expected) not in _OUT_OF_RANGE:
        return False
    log.warning("%s partition %s: the log starts again at offset %s, below offset %s where "
                "node %r was: it was made anew (a broker that lost its data, or the topic "
                "created again); the node reads it from there, its state kept",
                tp.topic, tp.partition, messages[0].offset, expected, node)
    return True


_OUT_OF_RANGE: set[tuple[str, int, int]] = set()  # (topic, partition, offset) reset, per process


def report_deleted() -> None:
    """Install :class:`OutOfRange` on aiokafka's fetcher logger (once per process)."""
    fetcher = logging.getLogger(FETCHER)
    if not any(isinstance(f, OutOfRange) for f in fetcher.filters):
        fetcher.addFilter(OutOfRange())


def check_gaps(consumer: Any, refetched: dict[TopicPartition, tuple[int, int]], node: str,
               tp: TopicPartition, expected: int | None, messages: list[Any]) -> bool:
    """Whether ``messages`` (fetched from ``tp``) may be processed; reports real gaps.

    A fetch that starts after ``expected`` was prefetched from another position (e.g. the
    committed offset) before our seek: processing it would skip records the state has not
    seen, so ``tp`` is fetched again from ``expected`` (False). If the log really lacks
    those offsets (compaction, transaction markers), the next fetch starts there again:
    it is processed, and the gap reported at WARNING, as is a gap inside a fetch.
    """
    first, last = messages[0].offset, messages[-1].offset
    if expected is not None and first > expected:
        tries = refetched.get(tp, (expected, 0))
        tries = tries if tries[0] == expected else (expected, 0)
        if tries[1] < GAP_REFETCHES:  # a stale prefetch or a rebalance's reset: seek again
            refetched[tp] = (expected, tries[1] + 1)
            consumer.seek(tp, expected)
            return False
        log.warning("node %s: %s partition %s: offsets %s..%s are not in the log "
                    "(compaction, transaction markers, deleted; fetched %s times); continuing "
                    "at %s", node, tp.topic, tp.partition, expected, first - 1,
                    GAP_REFETCHES + 1, first)
    refetched.pop(tp, None)
    if last - first + 1 > len(messages):
        missing = [(a.offset + 1, b.offset - 1) for a, b in pairwise(messages)
                   if b.offset > a.offset + 1 and (expected is None or b.offset > expected)]
        if missing:
            log.warning("node %s: %s partition %s: offsets %s are not in the log "
                        "(compaction or transaction markers)", node, tp.topic,
                        tp.partition, ", ".join(f"{a}..{b}" for a, b in missing))
    return True
