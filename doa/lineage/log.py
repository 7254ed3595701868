"""Point reads of the log for lineage: one record at an offset, a time seek, a bounded scan.

:class:`Log` wraps one kafka-python consumer that is assigned partitions (no group, nothing
committed). A record is fetched with one seek and one fetch; :meth:`Log.seek_time` finds the
first offset at or after an event time by binary search over single-record fetches
(``log2(records)`` fetches), because the embedded broker answers ``ListOffsets`` by timestamp
with offset 0 whatever the time. Records are decoded with the topology's codecs, or with the
schema versions registered on the broker.

Examples
--------
>>> Record(Event({"x": 1}, stream="s", partition=0, offset=4, timestamp=9), None).where
's:0:4'
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from doa.cluster.admin import internal_topic
from doa.errors import DoaError
from doa.events import Event, Lineage, coordinate_id, lineage_of
from doa.topology.topology import Topology
from doa.wire.codec import Codec

__all__ = ["Log", "Record", "input_partition", "listing", "on_partition"]

_POLL_MS = 2_000  # a fetch of a record that exists; only bounds a failure
_LISTED = 6  # stream names an error message shows


@dataclass(frozen=True)
class Record:
    """A record read back: the decoded event (no fields if undecodable, or if the record is a
    ``tombstone``: it has no value) and its header."""

    event: Event
    lineage: Lineage | None
    error: str | None = None
    tombstone: bool = False

    @property
    def where(self) -> str:
        e = self.event
        return f"{e.stream}:{e.partition}:{e.offset}"


def input_partition(lineage: Lineage | None) -> int | None:
    """The input partition a record was made on: where the first record its lineage names
    was read.

    A node keeps each input partition apart (its state, a learner's model versions, a race
    between a live and a candidate version), so a prediction, a metric or a model event
    belongs to the input partition of its first parent, whatever partition it was written to.

    Parameters
    ----------
    lineage : a record's ``doa`` header (:attr:`Record.lineage`, :attr:`doa.events.Event.lineage`)

    Returns
    -------
    The partition of ``lineage.coordinates[0]``; None without a lineage or without coordinates
    (a version-1 header names its parents by id only).

    Examples
    --------
    >>> from doa.events import Coordinates
    >>> lin = Lineage(b"i" * 16, "price", b"f" * 8, (b"p" * 16,), 2,
    ...               (Coordinates("fares", 1, 1448),))
    >>> input_partition(lin)
    1
    >>> input_partition(lin._replace(coordinates=())), input_partition(None)
    (None, None)
    """
    if lineage is None or not lineage.coordinates:
        return None
    return int(lineage.coordinates[0].partition)


def on_partition(r: Record, partition: int | None) -> bool:
    """Whether node output ``r`` belongs to input ``partition``: its ``partition`` field (a
    model event's), else its lineage's input partition (:func:`input_partition`: a metric's);
    True when either is unknown.

    >>> from doa.events import Coordinates, Lineage
    >>> lin = Lineage(b"i" * 16, "scorer", b"f" * 8, (b"l" * 16,), 2,
    ...               (Coordinates("labels", 1, 7),))
    >>> def at(stream: str, written_to: int, **fields: object) -> Record:
    ...     return Record(Event(fields, stream=stream, partition=written_to, offset=0,
    ...                         timestamp=0), lin)
    >>> metric = at("metrics", 0, model="scorer")
    >>> on_partition(metric, 1), on_partition(metric, 0), on_partition(metric, None)
    (True, False, True)
    >>> on_partition(at("models", 1, partition=0), 0)  # its field wins
    True
    """
    if partition is None:
        return True
    own = r.event.get("partition")
    own = input_partition(r.lineage) if own is None else own
    return own is None or int(own) == partition


class Log:
    """Read single records and short ranges of a topology's streams (see module docstring).

    Parameters
    ----------
    broker : bootstrap address
    topology : gives each stream's codec; without it the broker's registry does
    """

    def __init__(self, broker: str, topology: Topology | None = None) -> None:
        from kafka import KafkaConsumer

        from doa.cluster.security import kafka_python_options

        self.broker = broker
        self.topology = topology
        self._consumer = KafkaConsumer(
            bootstrap_servers=broker, **kafka_python_options(broker), enable_auto_commit=False,
            group_id=None, max_partition_fetch_bytes=64 * 1024, fetch_max_wait_ms=50,
            consumer_timeout_ms=_POLL_MS, allow_auto_create_topics=False)
        self._codecs: dict[str, Codec] = {}
        self._high: dict[tuple[str, int], int] = {}
        self._by_parent: dict[str, dict[bytes, list[tuple[int, int]]]] = {}
        self._committed: dict[tuple[str, str], dict[int, int]] = {}
        self.fetches = 0

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Log:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what there is -------------------------------------------------------------------------
    def partitions(self, stream: str) -> list[int]:
        """The stream's partitions (none if there is no such stream)."""
        found = self._consumer.partitions_for_topic(stream)
        return sorted(found) if found else []

    def streams(self) -> list[str]:
        """The names of all topics on the broker (fresh metadata; nothing is created)."""
        return sorted(self._consumer.topics())

    def require(self, stream: str, partition: int | None = None) -> None:
        """A one-line :class:`DoaError` unless the broker has ``stream`` (and ``partition``).

        Reads metadata only, at once: no fetch that would wait for a partition that never
        comes, no topic created.
        """
        found = self.partitions(stream)
        if not found:
            raise DoaError(f"no stream {stream!r} on {self.broker} "
                           f"({listing(stream, self.streams())})")
        if partition is not None and partition not in found:
            raise DoaError(f"stream {stream!r} has no partition {partition} "
                           f"(it has {_spread(found)})")

    def end(self, stream: str, partition: int) -> int:
        """The partition's end offset (its high watermark, read from a fetch: the embedded
        broker's ``ListOffsets`` gives only the last batch's base offset + 1)."""
        key = (stream, partition)
        if key not in self._high:
            from kafka import TopicPartition

            tp = TopicPartition(stream, partition)
            low = self._consumer.end_offsets([tp])[tp]
            self._fetch(stream, partition, max(low - 1, 0), 1)
            high = self._consumer.highwater(tp)
            self._high[key] = max(low, high or 0)
        return self._high[key]

    # -- reads ---------------------------------------------------------------------------------
    def get(self, stream: str, partition: int, offset: int) -> Record | None:
        """The record at ``offset`` (None if there is none: out of range or compacted)."""
        raws = self._fetch(stream, partition, offset, 1)
        if not raws or raws[0].offset != offset:
            return None
        return self._record(raws[0])

    def first_at(self, stream: str, partition: int, timestamp: int) -> int:
        """The first offset whose record timestamp is >= ``timestamp``, by binary search.

        Exact when timestamps do not decrease along the partition; callers that may meet
        disorder seek an earlier time (their window) and filter.
        """
        lo, hi = 0, self.end(stream, partition)
        while lo < hi:
            mid = (lo + hi) // 2
            raws = self._fetch(stream, partition, mid, 1)
            if not raws:
                hi = mid
            elif raws[0].timestamp < timestamp:
                lo = raws[0].offset + 1
            else:
                hi = mid
        return lo

    def scan(self, stream: str, partition: int, start: int,
             until_ts: int | None = None, stop: int | None = None) -> Iterator[Record]:
        """Records from ``start`` on, until one is later than ``until_ts``, ``stop`` (an
        offset, excluded) or the end."""
        for raw in self._raws(stream, partition, start, stop):
            if until_ts is not None and raw.timestamp > until_ts:
                return
            yield self._record(raw)

    def headers(self, stream: str, partition: int, start: int = 0,
                stop: int | None = None) -> Iterator[tuple[int, Lineage | None]]:
        """The offset and lineage header of each record from ``start`` on (to ``stop`` or the
        end), the records not decoded: a search by id reads only what it matches."""
        for raw in self._raws(stream, partition, start, stop):
            yield raw.offset, _lineage(tuple((k, bytes(v)) for k, v in raw.headers or ()))

    def by_parent(self, stream: str) -> dict[bytes, list[tuple[int, int]]]:
        """Where each record of the whole ``stream`` is (partition, offset), by each parent id
        its header lists; headers only, read once and kept (for a short stream that is not
        searched by time: the dead letters, stamped when they were written)."""
        if stream not in self._by_parent:
            found: dict[bytes, list[tuple[int, int]]] = {}
            for p in self.partitions(stream):
                for offset, lin in self.headers(stream, p):
                    for parent in lin.parents if lin else ():
                        found.setdefault(parent, []).append((p, offset))
            self._by_parent[stream] = found
        return self._by_parent[stream]

    def committed(self, group: str, stream: str) -> dict[int, int]:
        """The offsets consumer group ``group`` committed on ``stream``'s partitions (read
        only: the group is not joined; kept)."""
        key = (group, stream)
        if key not in self._committed:
            from kafka import KafkaConsumer, TopicPartition

            from doa.cluster.security import kafka_python_options

            reader = KafkaConsumer(bootstrap_servers=self.broker,
                                   **kafka_python_options(self.broker), group_id=group,
                                   enable_auto_commit=False, allow_auto_create_topics=False)
            try:
                found = {p: reader.committed(TopicPartition(stream, p))
                         for p in self.partitions(stream)}
            finally:
                reader.close(autocommit=False)
            self._committed[key] = {p: o for p, o in found.items() if o is not None}
        return self._committed[key]

    def backwards(self, stream: str, partition: int, before: int) -> Iterator[Record]:
        """Records at ``before - 1``, ``before - 2``, ... (one fetch each)."""
        for offset in range(min(before, self.end(stream, partition)) - 1, -1, -1):
            rec = self.get(stream, partition, offset)
            if rec is not None:
                yield rec

    # -- internals -----------------------------------------------------------------------------
    def _raws(self, stream: str, partition: int, start: int, stop: int | None) -> Iterator[Any]:
        end = self.end(stream, partition) if stop is None else stop
        pos = start
        while pos < end:
            raws = self._fetch(stream, partition, pos, 500)
            if not raws:
                return
            for raw in raws:
                if raw.offset >= end:
                    return
                yield raw
            pos = raws[-1].offset + 1

    def _fetch(self, stream: str, partition: int, offset: int, most: int) -> list[Any]:
        from kafka import TopicPartition

        tp = TopicPartition(stream, partition)
        consumer = self._consumer
        if consumer.assignment() != {tp}:  # one partition at a time: a poll returns only it
            consumer.assign([tp])
        consumer.seek(tp, offset)
        self.fetches += 1
        # poll in short slices: an empty poll waits its whole timeout, and the high watermark
        # of the first (empty) fetch answer says whether anything can come
        deadline = time.monotonic() + _POLL_MS / 1000
        while time.monotonic() < deadline:
            got = consumer.poll(timeout_ms=20, max_records=most).get(tp, [])
            if got:
                return [r for r in got if r.offset >= offset]
            high = consumer.highwater(tp)
            if high is not None and offset >= high:
                return []
        return []

    def codec(self, stream: str) -> Codec:
        if stream not in self._codecs:
            from doa.cluster.codecs import resolve_codec

            t = self.topology if self.topology is not None and \
                stream in self.topology.streams else None
            self._codecs[stream] = resolve_codec(stream, t, self.broker)[0]
        return self._codecs[stream]

    def _record(self, raw: Any) -> Record:
        headers = tuple((k, bytes(v)) for k, v in raw.headers or ())
        lineage = _lineage(headers)
        error = None
        try:
            body = self.codec(raw.topic).decode(raw.value) if raw.value is not None else {}
        except DoaError as exc:
            body, error = {}, f"{type(exc).__name__}: {exc}"
        event = Event(body, stream=raw.topic, partition=raw.partition, offset=raw.offset,
                      timestamp=raw.timestamp, key=raw.key,
                      id=lineage.id if lineage else coordinate_id(raw.topic, raw.partition,
                                                                  raw.offset),
                      headers=headers)
        return Record(event, lineage, error, raw.value is None)


def _lineage(headers: tuple[tuple[str, bytes], ...]) -> Lineage | None:
    """The lineage header, or None if there is none or it is malformed."""
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        return lineage_of(headers)
    return None


def listing(near: str, names: Iterable[str]) -> str:
    """A few stream names for an error message, those most like ``near`` first (the
    machinery's topics, :func:`doa.cluster.admin.internal_topic`, left out)."""
    shown = sorted(n for n in names if not internal_topic(n))
    if not shown:
        return "it has no streams"
    close = difflib.get_close_matches(near, shown, n=3, cutoff=0.6)
    shown = close + [n for n in shown if n not in close]
    more = len(shown) - _LISTED
    return "streams: " + ", ".join(shown[:_LISTED]) + (f" and {more} more" if more > 0 else "")


def _spread(partitions: list[int]) -> str:
    """``'1 partition: 0'``, ``'4 partitions: 0-3'``, or the numbers if they have gaps."""
    n = len(partitions)
    gapless = n > 1 and partitions[-1] - partitions[0] == n - 1
    numbers = f"{partitions[0]}-{partitions[-1]}" if gapless else ", ".join(map(str, partitions))
    return f"{n} partition{'s' if n != 1 else ''}: {numbers}"
