"""Find the record a lineage starts from: by coordinates (one fetch) or by event id (a scan).

An event id is a hash (:func:`doa.events.output_id`): it says nothing about where its record
is. ``STREAM:PARTITION:OFFSET`` is the fast path (``doa subscribe --meta`` and every lineage
step print coordinates); the stream and partition are checked against the broker's metadata
first, so a wrong one is a one-line error at once and no topic is created. An id is found by
reading the given streams (default: all the topology's; there is no default without one) from
the start, or, with ``at`` (an event time in ms), only ``window_ms`` around that time: without
``at`` the cost grows with the streams' length.

An id may be shortened to its first :data:`SHORTEST` or more hex digits, as ``doa lineage``
prints it (``1198ef9c…``; the ellipsis may be kept). A prefix must name one id, so its search
reads every given stream to the end (or the window's end) where a full id stops at the match.

Examples
--------
>>> parse_event("predictions:0:42")
Coordinates(stream='predictions', partition=0, offset=42)
>>> parse_event("00112233445566778899aabbccddeeff")
b'\\x00\\x11"3DUfw\\x88\\x99\\xaa\\xbb\\xcc\\xdd\\xee\\xff'
>>> parse_event("1198EF9C…")
'1198ef9c'
"""

from __future__ import annotations

import string
from collections.abc import Iterator, Sequence

from doa.errors import DoaError
from doa.events import Coordinates
from doa.lineage.log import Log, Record, listing

__all__ = ["SHORTEST", "TAKES", "find", "parse_event"]

SHORTEST = 8  # hex digits of the shortest id prefix looked up (as ``doa lineage`` prints ids)
TAKES = (f"give STREAM:PARTITION:OFFSET or a hex event id (32 digits, or its first {SHORTEST} "
         "or more)")


def parse_event(text: str) -> Coordinates | bytes | str:
    """``STREAM:PARTITION:OFFSET`` as :class:`~doa.events.Coordinates`, a 32-digit hex event
    id as its 16 bytes, or a shorter hex prefix of one (at least :data:`SHORTEST` digits) as
    lowercase text."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Coordinates(parts[0], int(parts[1]), int(parts[2]))
    digits = text.removesuffix("…").removesuffix("...").lower()
    if not digits or any(c not in string.hexdigits for c in digits):
        raise DoaError(f"event {text!r}: {TAKES}")
    if len(digits) == 32:
        return bytes.fromhex(digits)
    if not SHORTEST <= len(digits) < 32:
        raise DoaError(f"event {text!r}: an event id is 32 hex digits, or its first "
                       f"{SHORTEST} or more (got {len(digits)})")
    return digits


def find(log: Log, event: Coordinates | bytes | str, streams: Sequence[str] = (),
         at: int | None = None, window_ms: int = 1_000) -> Record:
    """The record named by ``event`` (as :func:`parse_event` gives it); a one-line
    :class:`DoaError` if there is none. Of ``streams``, those not on the broker hold nothing."""
    if isinstance(event, Coordinates):
        return _at(log, event)
    if not streams and log.topology is not None:
        streams = list(log.topology.streams)
    name = event.hex() if isinstance(event, bytes) else event
    if not streams:
        raise DoaError(f"event {name}: an id names no stream; give --stream STREAM or a "
                       f"TOPOLOGY, or STREAM:PARTITION:OFFSET (on {log.broker}: "
                       f"{listing('', log.streams())})")
    found: dict[bytes, Record] = {}
    for rec in _candidates(log, streams, at, window_ms):
        if rec.event.id == event:
            return rec
        if isinstance(event, str) and rec.event.id.hex().startswith(event):
            found.setdefault(rec.event.id, rec)
    if len(found) > 1:
        ids = ", ".join(sorted(i.hex() for i in found)[:3])
        raise DoaError(f"event {name}: the prefix matches {len(found)} ids ({ids}); "
                       "give more digits")
    if found:
        return next(iter(found.values()))
    where = "" if at is None else f" within {window_ms} ms of {at}"
    raise DoaError(f"event {name}: not found in {', '.join(streams)}{where}")


def _at(log: Log, where: Coordinates) -> Record:
    """The record at ``where``, its stream and partition checked first (metadata only)."""
    log.require(where.stream, where.partition)
    rec = log.get(where.stream, where.partition, where.offset)
    if rec is None:
        raise DoaError(f"stream {where.stream!r} partition {where.partition}: no record at "
                       f"offset {where.offset} (end {log.end(where.stream, where.partition)})")
    return rec


def _candidates(log: Log, streams: Sequence[str], at: int | None,
                window_ms: int) -> Iterator[Record]:
    """Every record of ``streams`` (within ``window_ms`` of ``at`` if given), in order."""
    for stream in streams:
        for p in log.partitions(stream):
            start = 0 if at is None else log.first_at(stream, p, at - window_ms)
            yield from log.scan(stream, p, start, None if at is None else at + window_ms)
