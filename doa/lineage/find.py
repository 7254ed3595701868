"""Find the record a lineage starts from: by coordinates (one fetch) or by event id (a scan).

An event id is a hash (:func:`doa.events.output_id`): it says nothing about where its record
is. ``STREAM:PARTITION:OFFSET`` is the fast path (``doa subscribe --meta`` and every lineage
step print coordinates). An id is found by reading the given streams (default: all the
topology's) from the start, or, with ``at`` (an event time in ms), only ``window_ms`` around
that time: without ``at`` the cost grows with the streams' length.

Examples
--------
>>> parse_event("predictions:0:42")
Coordinates(stream='predictions', partition=0, offset=42)
>>> parse_event("00112233445566778899aabbccddeeff")
b'\\x00\\x11"3DUfw\\x88\\x99\\xaa\\xbb\\xcc\\xdd\\xee\\xff'
"""

from __future__ import annotations

from collections.abc import Sequence

from doa.errors import DoaError
from doa.events import Coordinates
from doa.lineage.log import Log, Record

__all__ = ["find", "parse_event"]


def parse_event(text: str) -> Coordinates | bytes:
    """``STREAM:PARTITION:OFFSET`` as :class:`~doa.events.Coordinates`, or a hex event id."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Coordinates(parts[0], int(parts[1]), int(parts[2]))
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 16:
        raise DoaError(f"event {text!r}: give STREAM:PARTITION:OFFSET or a 32-digit hex "
                       "event id")
    return raw


def find(log: Log, event: Coordinates | bytes, streams: Sequence[str] = (),
         at: int | None = None, window_ms: int = 1_000) -> Record:
    """The record named by ``event``; a one-line :class:`DoaError` if there is none."""
    if isinstance(event, Coordinates):
        rec = log.get(event.stream, event.partition, event.offset)
        if rec is None:
            raise DoaError(f"stream {event.stream!r} partition {event.partition}: no record at "
                           f"offset {event.offset} (end {log.end(event.stream, event.partition)})")
        return rec
    if not streams and log.topology is not None:
        streams = list(log.topology.streams)
    if not streams:
        raise DoaError(f"event {event.hex()}: an id names no stream; give --stream or a "
                       "topology (or STREAM:PARTITION:OFFSET)")
    for stream in streams:
        for p in log.partitions(stream):
            start = 0 if at is None else log.first_at(stream, p, at - window_ms)
            for rec in log.scan(stream, p, start, None if at is None else at + window_ms):
                if rec.event.id == event:
                    return rec
    where = "" if at is None else f" within {window_ms} ms of {at}"
    raise DoaError(f"event {event.hex()}: not found in {', '.join(streams)}{where}")
