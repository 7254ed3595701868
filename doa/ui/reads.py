"""What ``doa ui`` reads from the log besides the catalog: a stream's last records, the drift
and model-version events, and a record's lineage. Each call is blocking (kafka-python, through
:class:`doa.lineage.log.Log`) and bounded; the app runs it in a worker thread.

- :func:`tail`: the last ``n`` records of a stream, newest first (:func:`newest_first`): per
  partition, the range ``[end - n, end)`` with ``end`` the high watermark when the read
  starts, so a read ends by itself however fast the stream grows. Records are decoded with
  the schema of a topology file that declares the stream (a record of an older registered
  version is read with that version: :class:`doa.cluster.codecs.RegisteredCodec`), else with
  the versions registered on the broker. A tombstone shows as ``value`` null with a
  ``note``; a malformed lineage header as ``lineage_error`` (:func:`record_dict`).
- :func:`events`: the tails of the streams whose schema is ``doa.DriftEvent`` or
  ``doa.ModelEvent``, merged, newest first. Newest means last appended within a partition
  (timestamps mix wall-clock and event time there), and by timestamp only where partitions
  and streams meet (:func:`newest_first`).
- :func:`lineage`: :func:`doa.lineage.find.find` then :func:`doa.lineage.walk.trace`;
  descendants need a topology file that declares the record's stream.

Values become JSON with :func:`to_json`: bytes longer than an id (a pickled model) show as
``"<N bytes>"``, NaN and infinities as the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
(:mod:`doa.collect.nonfinite`, as ``doa subscribe`` writes them; a ``null`` is a null).

Examples
--------
>>> to_json({"blob": b"x" * 100, "id": b"\\x01\\x02", "gap": float("nan")})
b'{"blob":"<100 bytes>","id":"0102","gap":"NaN"}'
>>> event_kind({"schema": {"name": "doa.DriftEvent"}}), event_kind({"schema": None})
('drift', None)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from doa.errors import DoaError, first_line
from doa.events import Coordinates, lineage_of
from doa.lineage.log import Log, Record
from doa.topology.topology import Topology

__all__ = ["EVENT_SCHEMAS", "event_kind", "events", "lineage", "newest_first", "record_dict",
           "tail", "to_json"]

EVENT_SCHEMAS = {"doa.DriftEvent": "drift", "doa.ModelEvent": "model"}
MOST = 500  # the most records one tail returns
TOMBSTONE = "tombstone: the record has no value (in a compacted stream it deletes its key)"


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        return raw.hex() if len(raw) <= 32 else f"<{len(raw)} bytes>"
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def to_json(data: Any) -> bytes:
    """``data`` as JSON bytes (see the module docstring for bytes and NaN)."""
    from doa.collect.nonfinite import dumps

    return dumps(data, default=_default, option=orjson.OPT_NON_STR_KEYS)


def event_kind(stream: dict[str, Any]) -> str | None:
    """``drift``, ``model`` or None: what a catalog stream's schema makes it."""
    schema = stream.get("schema") or {}
    return EVENT_SCHEMAS.get(str(schema.get("name")))


def declaring(topologies: Sequence[Topology], stream: str) -> Topology | None:
    """The first of ``topologies`` that declares ``stream``."""
    return next((t for t in topologies if stream in t.streams), None)


def record_dict(rec: Record) -> dict[str, Any]:
    """One record as the page shows it: where, when, its id and header, its decoded value.

    A tombstone (a record without a value: ``rec.tombstone``, as the log read it) has
    ``value`` null and a ``note`` saying so; a record whose lineage header is malformed has
    ``lineage_error`` (its id is then the one of its coordinates,
    :func:`doa.events.coordinate_id`).

    >>> from doa.events import Event
    >>> e = Event({}, stream="s", partition=0, offset=7, timestamp=1, headers=(("doa", b"x"),))
    >>> d = record_dict(Record(e, None, tombstone=True))
    >>> d["value"], d["note"][:9], d["lineage_error"][:32]
    (None, 'tombstone', 'truncated lineage header (1 byte')
    """
    e, lin, tombstone = rec.event, rec.lineage, rec.tombstone
    key: str | None = None
    if e.key is not None:
        try:
            key = e.key.decode()
        except UnicodeDecodeError:
            key = e.key.hex()
    out = {"stream": e.stream, "partition": e.partition, "offset": e.offset,
           "where": rec.where, "timestamp": e.timestamp, "key": key, "id": e.id.hex(),
           "node": lin.node if lin else None, "model_version": lin.model_version if lin else 0,
           "value": None if tombstone else dict(e)}
    if tombstone:
        out["note"] = TOMBSTONE
    if rec.error:
        out["error"] = rec.error
    unreadable = _lineage_error(e.headers) if lin is None else None
    if unreadable:
        out["lineage_error"] = unreadable
    return out


def _lineage_error(headers: Sequence[tuple[str, bytes]]) -> str | None:
    """Why the ``doa`` lineage header in ``headers`` cannot be read (None: it can, or there
    is none)."""
    try:
        lineage_of(headers)
    except ValueError as exc:
        return first_line(exc)
    return None


def tail(broker: str, stream: str, n: int, topologies: Sequence[Topology] = ()
         ) -> list[dict[str, Any]]:
    """The last ``n`` records of ``stream`` (at most :data:`MOST`), newest first."""
    n = max(0, min(n, MOST))
    with Log(broker, declaring(topologies, stream)) as log:
        parts = log.partitions(stream)
        if not parts:
            raise DoaError(f"stream {stream!r}: no such stream on {broker}")
        runs: list[list[dict[str, Any]]] = []
        for p in parts:
            end = log.end(stream, p)
            found = list(log.scan(stream, p, max(0, end - n), stop=end))
            runs.append([record_dict(r) for r in reversed(found)])
        return newest_first(runs)[:n]


def events(broker: str, catalog: dict[str, Any], n: int,
           topologies: Sequence[Topology] = ()) -> list[dict[str, Any]]:
    """The last ``n`` drift and model-version events of the catalog's streams, newest first."""
    runs = []
    for s in catalog.get("streams", ()):
        kind = event_kind(s)
        if kind is None or not s.get("records"):
            continue
        found = tail(broker, s["name"], n, topologies)
        for r in found:
            r["kind"] = kind
        runs.append(found)
    return newest_first(runs)[:n]


def newest_first(runs: Sequence[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Merge ``runs`` of records, each newest first in the order of the log, into one list.

    A partition's offsets are the one order of its records that is always true: a model event
    is stamped with the wall clock when a person publishes a version and with the event time of
    its input when a node promotes one, and a backfill or a lagging stream stamps records with
    times older than those appended before them. So each run (one partition's records, newest
    offset first, or a merge of such runs) keeps its order, and where the runs of several
    partitions or streams meet (Kafka keeps no order between them) the newest timestamp among
    their heads comes first (ties: the run given first).

    Examples
    --------
    >>> def r(partition, offset, timestamp):
    ...     return {"stream": "m", "partition": partition, "offset": offset,
    ...             "timestamp": timestamp}
    >>> p0 = [r(0, 3, 10), r(0, 2, 900), r(0, 1, 5)]   # newest offset first
    >>> p1 = [r(1, 1, 20), r(1, 0, 950)]
    >>> [(x["partition"], x["offset"]) for x in newest_first([p0, p1])]
    [(1, 1), (1, 0), (0, 3), (0, 2), (0, 1)]
    """
    heads = [0] * len(runs)
    out: list[dict[str, Any]] = []
    while True:
        ready = [i for i, run in enumerate(runs) if heads[i] < len(run)]
        if not ready:
            return out
        i = max(ready, key=lambda i: int(runs[i][heads[i]]["timestamp"]))  # ties: first run
        out.append(runs[i][heads[i]])
        heads[i] += 1


def lineage(broker: str, text: str, topologies: Sequence[Topology] = (),
            streams: Sequence[str] = (), depth: int = 8) -> dict[str, Any]:
    """The lineage of the record ``text`` names (``STREAM:PARTITION:OFFSET`` or a hex event
    id): the trace as :func:`doa.lineage.render.as_dict` makes it (with records) and as
    text lines of a tree, with ``lineage_error`` if the record's lineage header is malformed.
    An id is looked for in the topologies' streams, else in ``streams`` (the catalog's)."""
    from doa.lineage.find import find, parse_event
    from doa.lineage.render import as_dict, tree
    from doa.lineage.walk import trace

    event = parse_event(text.strip())
    if isinstance(event, Coordinates):
        places: list[tuple[Topology | None, list[str]]] = [
            (declaring(topologies, event.stream), [event.stream])]
    else:
        places = [(t, list(t.streams)) for t in topologies] or [(None, list(streams))]
    missing: DoaError | None = None
    for topology, names in places:
        with Log(broker, topology) as log:
            try:
                root = find(log, event, names)
            except DoaError as exc:
                missing = exc
                continue
            result = trace(log, root, depth=depth, forward=topology is not None)
        out = {"trace": as_dict(result, records=True), "tree": tree(result),
               "descendants_searched": topology is not None}
        unreadable = _lineage_error(root.event.headers) if root.lineage is None else None
        if unreadable:  # no ancestry: the record's header, not its parents, is missing
            out["lineage_error"] = unreadable
        return out
    assert missing is not None
    raise missing
