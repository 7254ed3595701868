"""``doa export``: one stream, decoded, into a JSON lines, CSV or Parquet file.

The range is fixed when the export starts (:meth:`doa.collect.read.Reader.ends`), so it ends
by itself. Records are decoded with the stream's registered schema versions
(:func:`doa.collect.read.codecs_for`): one written under an older version decodes with that
version, then is resolved into the topology's, so every row has the same columns. The rows
come partition by partition, each in offset order. A record that cannot be decoded (or has no
value: a tombstone) stops the export with a one-line error naming stream, partition, offset
and reason (``on_error="skip"``: it is counted in :attr:`ExportReport.skipped` instead, the
first few kept in :attr:`ExportReport.first_skipped`).

With ``with_lineage`` each row also has ``_partition``, ``_offset``, ``_timestamp`` (ms),
``_id`` and ``_parents`` (the lineage header's ids, hex; a record without one is identified
by its coordinates, as :func:`doa.events.coordinate_id` says). A record whose lineage header
is malformed cannot be given these columns: it is undecodable as above (reason
``bad-lineage``). Without ``with_lineage`` the header is not read.

A record that ``doa dlq --replay`` re-published for one node (its ``doa.replay`` header names
the node whose dead letter it was, :func:`doa.events.replay_node`) is that node's second
chance at a record the stream already holds, under a new ``_id``: it is left out and counted
per node in :attr:`ExportReport.replays`, as :class:`doa.subscriber.Subscriber` skips it.
With ``with_replays`` it is kept, and every row has a ``_replayed_for`` column: the node it
was replayed for, None for the records written once. A replay whose header names no node
(written before doa named it) is for every reader: exported as any record.

Record timestamps are event time as the writers set them, which a backfill or a lagging
stream keeps behind the wall clock: when ``--from``/``--to`` times hold no record, a warning
(logged) says what times the records read do span (:func:`doa.collect.bounds.empty_window`,
as ``doa dataset`` says it of outcomes).

Examples
--------
>>> report = export("topologies/fraud.py", "outcomes", broker="127.0.0.1:9092",
...                 out="outcomes.parquet")                          # doctest: +SKIP
>>> report.records                                                   # doctest: +SKIP
12000
"""

from __future__ import annotations

import datetime
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from doa.collect.bounds import (
    Bound,
    Span,
    check_range,
    empty_window,
    first_offset,
    in_time,
    last_offset,
    timed,
    widen,
)
from doa.collect.read import Reader, codecs_for, load, off_loop
from doa.collect.sinks import Sink, check_out, format_of
from doa.errors import DoaError
from doa.events import coordinate_id, replay_node
from doa.topology.topology import Topology

if TYPE_CHECKING:
    from doa.client import RecordError

log = logging.getLogger(__name__)

LINEAGE_COLUMNS = ("_partition", "_offset", "_timestamp", "_id", "_parents")
REPLAY_COLUMN = "_replayed_for"
FIRST_SKIPPED = 3  # the skipped records an export report keeps, to name them


@dataclass
class ExportReport:
    """What an export wrote: rows, the offsets read per partition ``(start, end)``, time,
    and the first and last timestamps and count of the records in those offsets (``span``,
    None: none)."""

    stream: str
    path: str
    format: str
    records: int = 0
    skipped: int = 0
    first_skipped: list[RecordError] = field(default_factory=list)  # the first FIRST_SKIPPED
    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0
    span: Span | None = None
    replays: dict[str, int] = field(default_factory=dict)  # replayed for a node, by node
    with_replays: bool = False  # the replays were kept (else left out)

    @property
    def rate(self) -> float:
        """Records per second, from connecting to the broker to the file's close."""
        return self.records / self.seconds if self.seconds > 0 else 0.0


def export(topology: Topology | str, stream: str, *, broker: str, out: str,
           fmt: str | None = None, start: Bound | None = None, end: Bound | None = None,
           with_lineage: bool = False, on_error: str = "raise",
           rows_per_group: int | None = None, with_replays: bool = False) -> ExportReport:
    """Write ``stream``'s records in ``[start, end)`` to ``out``; see the module docstring.

    ``fmt`` defaults to the suffix of ``out``; ``end`` defaults to the end of each partition
    when the export starts.
    """
    return off_loop(_export, topology, stream, broker, out, fmt, start, end, with_lineage,
                    on_error, rows_per_group, with_replays)


def _export(topology: Topology | str, stream: str, broker: str, out: str, fmt: str | None,
            start: Bound | None, end: Bound | None, with_lineage: bool, on_error: str,
            rows_per_group: int | None, with_replays: bool) -> ExportReport:
    if on_error not in ("raise", "skip"):
        raise DoaError(f"on_error={on_error!r}: expected 'raise' or 'skip'")
    check_range(start, end)
    check_out(out)
    fmt = format_of(out, fmt)
    t = load(topology)
    codec = codecs_for(t, [stream], broker)[stream]
    schema = codec.schema.json
    names = [f["name"] for f in schema["fields"]]
    extra = list(LINEAGE_COLUMNS) if with_lineage else []
    clash = sorted(set(names) & set(extra))
    if clash:
        raise DoaError(f"stream {stream!r}: fields {clash} clash with the --with-lineage "
                       "columns; export without --with-lineage")
    if with_replays and REPLAY_COLUMN in names:
        raise DoaError(f"stream {stream!r}: field {REPLAY_COLUMN!r} clashes with the "
                       "--with-replays column; export without --with-replays")
    extra += [REPLAY_COLUMN] if with_replays else []
    report = ExportReport(stream, out, fmt, with_replays=with_replays)
    began = time.perf_counter()

    def arrow() -> tuple[Any, Any]:
        from doa.collect.arrow import arrow_schema, converter, pyarrow

        pa = pyarrow()
        lineage = [("_partition", pa.int32()), ("_offset", pa.int64()),
                   ("_timestamp", pa.timestamp("ms", tz="UTC")), ("_id", pa.string()),
                   ("_parents", pa.list_(pa.string()))]
        replayed = [(REPLAY_COLUMN, pa.string())] if with_replays else []
        return (arrow_schema(schema, (lineage if with_lineage else []) + replayed),
                converter(schema))

    sink = Sink(out, fmt, names + extra, arrow,
                **({"rows_per_group": rows_per_group} if rows_per_group else {}))
    with Reader(broker) as reader:
        ranges = reader.ends(stream)
        with sink:
            for p, (begin, stop) in sorted(ranges.items()):
                lo, hi = first_offset(start, begin), last_offset(end, stop)
                report.ranges[p] = (lo, max(lo, hi))
                for batch in reader.batches(stream, p, lo, hi):
                    sink.write(_rows(batch, codec, start, end, with_lineage, on_error, report))
    report.records = sink.rows
    report.seconds = time.perf_counter() - began
    if not report.records and not report.skipped and timed(start, end):
        log.warning(empty_window(
            f"stream {stream!r}", "record", stream, start, end, report.span,
            "record timestamps: event time as their writers set it, not when they were "
            "written", f"it holds no record in the offsets read ({ranges_line(report)})"))
    return report


def ranges_line(report: ExportReport) -> str:
    """The offsets read per partition, ``0: 0..3000, 1: 0..2990`` (``none``: no partition).

    >>> ranges_line(ExportReport("s", "s.csv", "csv", ranges={0: (0, 3), 1: (2, 2)}))
    '0: 0..3, 1: 2..2'
    """
    return ", ".join(f"{p}: {a}..{b}" for p, (a, b) in report.ranges.items()) or "none"


def replays_line(report: ExportReport) -> str:
    """What an export did with the records ``doa dlq --replay`` re-published for a node
    (empty: there were none).

    >>> report = ExportReport("scores", "s.csv", "csv", replays={"alert": 1248, "page": 2})
    >>> print(replays_line(report))  # doctest: +NORMALIZE_WHITESPACE
    left out 1,250 records that doa dlq --replay re-published for a node (alert: 1,248,
    page: 2): each node's second chance at a record exported once already; --with-replays
    keeps them, naming the node in a _replayed_for column
    >>> report.with_replays = True
    >>> replays_line(report)
    'kept 1,250 records replayed for a node (alert: 1,248, page: 2), named in _replayed_for'
    """
    if not report.replays:
        return ""
    n = sum(report.replays.values())
    nodes = ", ".join(f"{node}: {k:,}" for node, k in sorted(report.replays.items()))
    records = f"record{'s' if n != 1 else ''}"
    if report.with_replays:
        return f"kept {n:,} {records} replayed for a node ({nodes}), named in {REPLAY_COLUMN}"
    return (f"left out {n:,} {records} that doa dlq --replay re-published for a node "
            f"({nodes}): each node's second chance at a record exported once already; "
            f"--with-replays keeps them, naming the node in a {REPLAY_COLUMN} column")


def _rows(batch: list[Any], codec: Any, start: Bound | None, end: Bound | None,
          with_lineage: bool, on_error: str, report: ExportReport) -> list[dict[str, Any]]:
    from doa.client import RecordError, decode_at

    bounded = timed(start, end)
    rows = []
    for m in batch:
        report.span = widen(report.span, m.timestamp)
        if bounded and not in_time(m.timestamp, start, end):
            continue
        node = replay_node(m.headers) if m.headers else None
        if node is not None:
            name = node.decode(errors="replace")
            report.replays[name] = report.replays.get(name, 0) + 1
            if not report.with_replays:
                continue
        try:  # a tombstone, a value, or (for the lineage columns) a header it cannot read
            row = decode_at(codec, m)
            if with_lineage:
                row.update(lineage_columns(m))
            if report.with_replays:
                row[REPLAY_COLUMN] = name if node is not None else None
        except RecordError as error:
            if on_error != "skip":
                raise error from None
            report.skipped += 1
            if len(report.first_skipped) < FIRST_SKIPPED:
                report.first_skipped.append(error)
            continue
        rows.append(row)
    return rows


def lineage_columns(m: Any) -> dict[str, Any]:
    """The ``--with-lineage`` columns of a consumed record ``m``; a
    :class:`doa.client.RecordError` (reason ``bad-lineage``) if its lineage header is
    malformed."""
    from doa.client import lineage_at

    lin = lineage_at(m)
    return {"_partition": m.partition, "_offset": m.offset,
            "_timestamp": _utc(m.timestamp),
            "_id": (lin.id if lin else coordinate_id(m.topic, m.partition, m.offset)).hex(),
            "_parents": [p.hex() for p in lin.parents] if lin else []}


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _utc(ms: int) -> datetime.datetime:
    return _EPOCH + datetime.timedelta(milliseconds=ms)
