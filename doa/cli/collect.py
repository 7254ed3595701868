"""``doa export`` and ``doa dataset``: a stream, or a learner's training set, into a file."""

from __future__ import annotations

import shlex
from typing import Any

import click
from rich.markup import escape

from doa.cli.console import err
from doa.cli.options import broker_option, need_broker
from doa.collect.bounds import Bound
from doa.errors import DoaError
from doa.local.embedded import configured_broker

FORMAT = click.Choice(["jsonl", "csv", "parquet"])
_range = [
    click.option("--from", "start", default=None, metavar="TIME|OFFSET",
                 help="Start here (inclusive): an offset (in every partition), a time "
                      "(2024-05-01T12:00, 1714564800000ms) or a duration ago (-2h)."),
    click.option("--to", "end", default=None, metavar="TIME|OFFSET",
                 help="Stop before this (default: the end when the command starts)."),
    click.option("--out", "-o", required=True, metavar="FILE",
                 help="The file to write (- : standard output, JSON lines or CSV)."),
    click.option("--format", "fmt", type=FORMAT, default=None,
                 help="jsonl, csv or parquet (default: from the file's suffix)."),
]


def _options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_range):
        fn = option(fn)
    return broker_option(fn)


def _bounds(start: str | None, end: str | None) -> tuple[Bound | None, Bound | None]:
    from doa.collect.bounds import parse_bound

    return (parse_bound(start) if start else None), (parse_bound(end) if end else None)


@click.command("export")
@click.argument("topology")
@click.argument("stream")
@_options
@click.option("--with-lineage", is_flag=True,
              help="Add _partition, _offset, _timestamp, _id and _parents (hex) columns.")
@click.option("--skip-undecodable", is_flag=True,
              help="Count records that cannot be decoded instead of stopping at the first.")
@click.option("--with-replays", is_flag=True,
              help="Keep records doa dlq --replay re-published for a node (left out by "
                   "default), with a _replayed_for column naming the node.")
def export_cmd(topology: str, stream: str, broker: str | None, start: str | None,
               end: str | None, out: str, fmt: str | None, with_lineage: bool,
               skip_undecodable: bool, with_replays: bool) -> None:
    """Write STREAM's records to a file, decoded with its registered schema versions.

    The range ends where each partition ended when the command started, so it ends by
    itself. Rows come partition by partition, each in offset order. A record doa dlq
    --replay re-published for a node (that node's second chance) is left out and counted.
    """
    from doa.collect.export import export, ranges_line, replays_line
    from doa.subscriber import RecordError

    lo, hi = _bounds(start, end)  # export() checks the range and --out before it reads
    try:
        report = export(topology, stream, broker=need_broker(configured_broker(broker)),
                        out=out, fmt=fmt, start=lo, end=hi, with_lineage=with_lineage,
                        on_error="skip" if skip_undecodable else "raise",
                        with_replays=with_replays)
    except RecordError as e:
        raise DoaError(f"{e}; nothing written (--skip-undecodable exports the other records "
                       f"and counts these)") from None
    err.print(escape(f"exported {report.records:,} records of {stream!r} to {out} "
                     f"({report.format}) in {report.seconds:.1f} s, {report.rate:,.0f}/s; "
                     f"offsets read per partition {ranges_line(report)}"))
    if report.replays:
        err.print(escape(replays_line(report)))
    if report.skipped:
        err.print(f"[yellow]warning[/yellow]: {escape(skipped_line(report, topology))}")


@click.command("dataset")
@click.argument("topology")
@click.argument("learner")
@_options
def dataset_cmd(topology: str, learner: str, broker: str | None, start: str | None,
                end: str | None, out: str, fmt: str | None) -> None:
    """Write LEARNER's training set: one row per label it learned from, in its order.

    Each row: the features the learner predicted on (as it logged them), its prediction, the
    label, the model versions that predicted and learned, timestamps and event ids.
    --from/--to bound when it learned (offsets or times of its outcomes stream). LEARNER
    may be a model node with labels: what it scored against each label (no learned version).
    """
    import warnings

    from doa.collect.dataset import collect
    from doa.collect.sinks import Sink, check_out, format_of

    fmt = format_of(out, fmt)
    lo, hi = _bounds(start, end)
    check_out(out)  # now: the Sink opens only once collect() (it checks the range) has read
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the counts are said below
        data = collect(topology, learner, broker=need_broker(configured_broker(broker)),
                       start=lo, end=hi)
    table: Any = None
    if fmt == "parquet":
        from doa.collect.columns import to_table

        table = to_table(data)
    with Sink(out, fmt, data.columns, lambda: (table.schema, None)) as sink:
        if table is not None:
            sink.write_table(table)
        else:
            sink.write(data.rows)
    err.print(escape(f"wrote {len(data.rows):,} rows of {data.kind} {learner!r} "
                     f"({len(data.features) + len(data.categories)} features) to {out} "
                     f"({fmt}) in {data.seconds:.1f} s"))
    if data.duplicates:
        err.print(f"{data.duplicates:,} outcomes were written twice (a replay after a "
                  "restart) and count once")
    if data.replays:
        err.print(escape(dataset_replays_line(data.replays)))
    if data.missing:
        err.print(f"[yellow]warning[/yellow]: {data.missing:,} outcomes have no prediction "
                  "in the log (deleted by retention?) and are left out")


def dataset_replays_line(replays: dict[str, int]) -> str:
    """What ``doa dataset`` left out of the records ``doa dlq --replay`` re-published for a
    node, per stream.

    >>> dataset_replays_line({"outcomes": 12, "predictions": 1})  # doctest: +NORMALIZE_WHITESPACE
    "left out 13 records that doa dlq --replay re-published for a node reading the learner's
    streams (outcomes: 12, predictions: 1): that node's second chance, not a label learned
    again"
    """
    n = sum(replays.values())
    streams = ", ".join(f"{s}: {k:,}" for s, k in sorted(replays.items()))
    return (f"left out {n:,} record{'s' if n != 1 else ''} that doa dlq --replay "
            f"re-published for a node reading the learner's streams ({streams}): that "
            "node's second chance, not a label learned again")


def skipped_line(report: Any, topology: str) -> str:
    r"""What ``--skip-undecodable`` left out: how many, the first few, and how to see each.

    >>> from doa.client import RecordError
    >>> from doa.collect.export import ExportReport
    >>> report = ExportReport("s", "x.jsonl", "jsonl", skipped=5, first_skipped=[
    ...     RecordError("s", 0, 9, "bad-marker", "starts with '6a75'"),
    ...     RecordError("s", 1, 2, "tombstone", "the record has no value")])
    >>> print(skipped_line(report, "t.py").replace("; ", ";\n"))
    5 records could not be decoded and were skipped (first: s:0:9 bad-marker, s:1:2 tombstone);
    to see each (one line on stderr): doa subscribe s -t t.py --from-beginning --idle 2 >/dev/null
    """
    first = ", ".join(f"{e.stream}:{e.partition}:{e.offset} {e.reason}"
                      for e in report.first_skipped)
    n = report.skipped
    return (f"{n:,} record{'s' if n != 1 else ''} could not be decoded and "
            f"{'were' if n != 1 else 'was'} skipped (first: {first}); to see each (one line on "
            f"stderr): doa subscribe {report.stream} -t {shlex.quote(topology)} "
            "--from-beginning --idle 2 >/dev/null")
