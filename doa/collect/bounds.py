"""Where a read starts and ends: ``--from``/``--to`` values, an offset or a time.

A bound is an offset (a plain integer: the same offset in every partition) or a time:
an ISO 8601 date or date-time (UTC unless it says otherwise), epoch milliseconds with the
suffix ``ms`` (a Kafka record timestamp), or a duration before now (``-90s``, ``-15m``,
``-2h``, ``-7d``). ``--from`` is inclusive, ``--to`` exclusive. A time bound keeps the records
whose timestamp lies in the range (whatever their order in the partition).

Examples
--------
>>> parse_bound("1200")
Bound(offset=1200, time_ms=None)
>>> parse_bound("1700000000000ms").time_ms
1700000000000
>>> parse_bound("2023-11-14T22:13:20Z").time_ms
1700000000000
>>> str(parse_bound("1700000000000ms"))
'2023-11-14T22:13:20.000Z'
>>> parse_bound("2023-11-14").time_ms
1699920000000
>>> parse_bound("-1h", now_ms=1700000000000).time_ms
1699996400000
>>> parse_bound("yesterday")
Traceback (most recent call last):
...
doa.errors.DoaError: bound 'yesterday': expected an offset (1200), a time (2024-05-01T12:00, \
1714564800000ms) or a duration before now (-15m, -2h, -7d)
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from doa.errors import DoaError

_UNITS = {"s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_AGO = re.compile(r"-(\d+)([smhd])")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Bound:
    """One end of a range: an ``offset`` (in every partition) or a ``time_ms``."""

    offset: int | None = None
    time_ms: int | None = None

    def __str__(self) -> str:
        """``offset 1200``, or the time in UTC (``2023-11-14T22:13:20.000Z``)."""
        if self.offset is not None:
            return f"offset {self.offset}"
        moment = _EPOCH + timedelta(milliseconds=self.time_ms or 0)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_bound(text: str, now_ms: int | None = None) -> Bound:
    """The :class:`Bound` ``text`` says (see the module docstring); a one-line error if none."""
    value = text.strip()
    if value.isdigit():
        return Bound(offset=int(value))
    if value.endswith("ms") and value[:-2].isdigit():
        return Bound(time_ms=int(value[:-2]))
    ago = _AGO.fullmatch(value)
    if ago:
        now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return Bound(time_ms=now - int(ago[1]) * _UNITS[ago[2]])
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise DoaError(f"bound {text!r}: expected an offset (1200), a time (2024-05-01T12:00, "
                       "1714564800000ms) or a duration before now (-15m, -2h, -7d)") from None
    return Bound(time_ms=epoch_ms(moment))


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch, exactly (a float timestamp loses the last one); a
    naive time is UTC.

    >>> epoch_ms(datetime(2107, 1, 1, 0, 0, 0, 6000))
    4323283200006
    """
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def check_range(start: Bound | None, end: Bound | None) -> None:
    """A one-line error when ``[start, end)`` is empty: both offsets, or both times, and
    ``start`` not before ``end`` (an offset and a time are not compared).

    >>> check_range(Bound(offset=200), Bound(offset=100))
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: empty range: --from offset 200 is not before --to offset 100 \
(--from is inclusive, --to exclusive)
    >>> check_range(Bound(offset=200), Bound(time_ms=100))  # not comparable: no error
    """
    if start is None or end is None:
        return
    for a, b in ((start.offset, end.offset), (start.time_ms, end.time_ms)):
        if a is not None and b is not None and a >= b:
            raise DoaError(f"empty range: --from {start} is not before --to {end} "
                           "(--from is inclusive, --to exclusive)")


def first_offset(bound: Bound | None, begin: int) -> int:
    """The first offset a read of a partition starting at ``begin`` needs to look at."""
    if bound is not None and bound.offset is not None:
        return max(begin, bound.offset)
    return begin


def last_offset(bound: Bound | None, end: int) -> int:
    """The offset a read stops before, given the partition's ``end`` when the read started."""
    if bound is not None and bound.offset is not None:
        return min(end, bound.offset)
    return end


def in_time(timestamp: int, start: Bound | None, stop: Bound | None) -> bool:
    """Whether a record with this timestamp is inside the time part of the range.

    >>> in_time(5, Bound(time_ms=5), Bound(time_ms=6)), in_time(6, None, Bound(time_ms=6))
    (True, False)
    """
    if start is not None and start.time_ms is not None and timestamp < start.time_ms:
        return False
    return stop is None or stop.time_ms is None or timestamp < stop.time_ms


Span = tuple[int, int, int]  # the first and last timestamps of some records, and their count


def widen(span: Span | None, timestamp: int) -> Span:
    """``span`` with one more record, stamped ``timestamp``.

    >>> widen(widen(None, 30), 10)
    (10, 30, 2)
    """
    if span is None:
        return timestamp, timestamp, 1
    return min(span[0], timestamp), max(span[1], timestamp), span[2] + 1


def timed(start: Bound | None, end: Bound | None) -> bool:
    """Whether ``[start, end)`` bounds times (not only offsets).

    >>> timed(Bound(offset=3), None), timed(None, Bound(time_ms=0))
    (False, True)
    """
    return any(b is not None and b.time_ms is not None for b in (start, end))


def empty_window(who: str, noun: str, stream: str, start: Bound | None, end: Bound | None,
                 span: Span | None, stamped: str, none: str) -> str:
    """Why a time window holds no ``noun``: the times that the ``noun`` records of ``stream``
    read do span (``span``), what their timestamps are (``stamped``), or ``none`` if no
    record was read at all. ``doa dataset`` and ``doa export`` say it when a window is empty.

    >>> print(empty_window("stream 'clicks'", "record", "clicks", Bound(time_ms=0), None,
    ...                    (86_400_000, 86_400_000, 1), "record timestamps", "none read"))
    ... # doctest: +NORMALIZE_WHITESPACE
    stream 'clicks': no record in --from 1970-01-01T00:00:00.000Z --to (none); the 1 records
    of 'clicks' are stamped 1970-01-02T00:00:00.000Z .. 1970-01-02T00:00:00.000Z (record
    timestamps); give --from/--to in that range
    """
    head = f"{who}: no {noun} in --from {start or '(none)'} --to {end or '(none)'}"
    if span is None:
        return f"{head}; {none}"
    first, last, count = span
    return (f"{head}; the {count:,} {noun}s of {stream!r} are stamped {Bound(time_ms=first)} "
            f".. {Bound(time_ms=last)} ({stamped}); give --from/--to in that range")
