"""``doa`` commands that talk to a broker: run, publish, subscribe (``doa broker`` and
``doa dlq`` are in :mod:`doa.cli.broker` and :mod:`doa.cli.dlq`)."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson
from rich.markup import escape
from rich.table import Table

from doa.cli.console import err, out
from doa.cli.options import Duration, broker_option, json_default, need_broker, topology_option
from doa.engines import NodeStats
from doa.errors import DoaError
from doa.local.embedded import configured_broker

__all__ = ["publish_cmd", "run_cmd", "subscribe_cmd"]

def summary_line(elapsed: float, stats: dict[str, NodeStats], dead_letters: str = "dead letters",
                 before: dict[str, int] | None = None) -> str:
    """The status line: each node's records in and out, then those it skipped (replays for
    another node) and those it sent to the dead-letter stream ``dead_letters``, if any, with
    how many more than ``before`` (dead letters per node at the previous line) said.

    Examples
    --------
    >>> from doa.engines import NodeStats
    >>> stats = {"parse": NodeStats(records_in=500, records_out=450, dead_letters=50),
    ...          "count": NodeStats(records_in=450, records_out=450, skipped=3)}
    >>> print(summary_line(10.44, stats, "iot.dlq", before={"parse": 38}))
    [  10.4s] parse: in 500 out 450 dead letters 50 (+12) to iot.dlq | count: in 450 out 450 \
skipped 3
    >>> print(summary_line(12.0, stats, "iot.dlq", before={"parse": 50}).split(" | ")[0])
    [  12.0s] parse: in 500 out 450 dead letters 50 to iot.dlq
    """
    parts = []
    for name, s in stats.items():
        part = f"{name}: in {s.records_in} out {s.records_out}"
        if s.skipped:
            part += f" skipped {s.skipped}"
        if s.dead_letters:
            new = s.dead_letters - (before or {}).get(name, 0)
            part += f" dead letters {s.dead_letters}{f' (+{new})' if new else ''} to " \
                    f"{dead_letters}"
        parts.append(part)
    return f"[{elapsed:6.1f}s] " + " | ".join(parts)


def stats_table(stats: dict[str, NodeStats], seconds: float) -> Table:
    skips = any(s.skipped for s in stats.values())  # a column only when a replay was skipped
    table = Table(title=f"run summary ({seconds:.1f} s)")
    for col in ("node", "records in", "records out", "dead letters",
                *(("skipped",) if skips else ()), "snapshots", "records/s"):
        table.add_column(col, justify="left" if col == "node" else "right")
    for name, s in stats.items():
        rate = s.records_in / seconds if seconds > 0 else 0.0
        table.add_row(name, str(s.records_in), str(s.records_out), str(s.dead_letters),
                      *((str(s.skipped),) if skips else ()), str(s.snapshots), f"{rate:,.0f}")
    return table


@click.command("run")
@click.argument("topology")
@broker_option
@click.option("--nodes", default=None, help="Comma-separated nodes to run (default: all).")
@click.option("--for", "seconds", type=Duration(), default=None, metavar="DURATION",
              help="Stop after this long: seconds (60) or 30s, 1m, 1h.")
@click.option("--quiet", "-q", is_flag=True,
              help="No status line of the nodes' counts (broker status lines still show).")
@click.option("--engine", default="kafka", show_default=True,
              help="The engine running the nodes: kafka (the aiokafka batch loop) or faust "
                   "(Faust agents; needs doa[faust]).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              envvar="DOA_METRICS_PORT", metavar="PORT",
              help="Serve Prometheus /metrics on PORT (default: $DOA_METRICS_PORT, else off; "
                   "needs doa[metrics]).")
def run_cmd(topology: str, broker: str | None, nodes: str | None, seconds: float | None,
            quiet: bool, engine: str, metrics_port: int | None) -> None:
    """Run a topology's nodes (an embedded broker is started if none is configured).

    A status line shows the nodes' counts when they change (every 10 s when idle). A stop
    (SIGTERM, Ctrl-C, --for) takes at most $DOA_SHUTDOWN_GRACE_S seconds (10); if the broker
    is gone by then, doa says what is left undone and exits 1 (nothing is lost: it is
    reprocessed on restart). A second SIGTERM or Ctrl-C exits at once.
    """
    import signal

    from doa.cluster.reach import check_reachable
    from doa.engines import worker_class
    from doa.engines.launch import run
    from doa.engines.signals import stop_before_start

    # SIGTERM while the topology's modules import (river, numba: seconds) exits 0 at once,
    # as a stop during the run does; doa.engines.launch.run then installs its own handlers.
    signal.signal(signal.SIGTERM, stop_before_start)
    worker_class(engine)  # an unknown engine first: the broker does not matter then
    if nodes is not None and not [n for n in nodes.split(",") if n.strip()]:
        raise click.BadParameter("give node names, e.g. --nodes a,b (or leave --nodes out to "
                                 "run them all)", param_hint="'--nodes'")
    from doa.observe import check_extras

    check_extras(metrics_port)  # --metrics-port or OpenLineage set up without their extra
    address = configured_broker(broker)
    if address:
        check_reachable(address, timeout_s=3.0)  # in seconds, before the imports
    from doa.topology.loader import load_topology

    t = load_topology(topology)
    t.check()  # its problems before any notice of starting or compiling
    if not address:
        err.print("no --broker or DOA_BROKER: starting an embedded broker (in memory)")
    compiling = numba_nodes(t, nodes.split(",") if nodes else None)
    if compiling and not quiet:
        err.print(f"compiling Numba kernels for {', '.join(compiling)} (seconds on first use, "
                  "then from numba's cache)")
    report = run(t, broker=broker, nodes=nodes.split(",") if nodes else None, seconds=seconds,
                 tick=None if quiet else StatusTicker(dead_letters=t.dead_letters.name),
                 engine=engine,
                 say=lambda line: err.print(escape(line)), metrics_port=metrics_port)
    out.print(stats_table(report.stats, report.seconds))
    out.print(f"stopped by {report.stopped_by}; broker {report.broker}" + ("" if address else
              " (embedded, in memory: stopped with doa, its streams and dead letters are gone)"))
    if report.incomplete:
        raise DoaError(report.incomplete)


def numba_nodes(topology: Any, selected: list[str] | None) -> list[str]:
    """The nodes among ``selected`` (None: all) whose start compiles Numba kernels.

    >>> from doa.topology.loader import load_topology
    >>> numba_nodes(load_topology("topologies/fraud.py"), None)
    ['featurize']
    """
    return [name for name, n in topology.nodes.items()
            if (selected is None or name in selected)
            and (n.kind == "kernel" or bool(getattr(n.spec, "compiled", False)))]


class StatusTicker:
    """``tick`` for :func:`doa.engines.launch.run`: a summary line when a count changed, or every
    ``idle_s`` seconds when none did; in yellow when a node sent records to the dead-letter
    stream ``dead_letters`` since the line before (the first ones are also said one by one, with
    their reason: :mod:`doa.runtime.tell`)."""

    def __init__(self, idle_s: float = 10.0, dead_letters: str = "dead letters",
                 say: Callable[[str, bool], None] | None = None) -> None:
        self.idle_s = idle_s
        self.dead_letters = dead_letters
        self.say = say or _say_status
        self._shown: tuple[tuple[int, int, int, int], ...] | None = None
        self._dead: dict[str, int] = {}
        self._at = 0.0

    def __call__(self, elapsed: float, stats: dict[str, NodeStats]) -> None:
        counts = tuple((s.records_in, s.records_out, s.dead_letters, s.skipped)
                       for s in stats.values())
        if counts != self._shown or elapsed - self._at >= self.idle_s:
            self._shown, self._at = counts, elapsed
            line = summary_line(elapsed, stats, self.dead_letters, self._dead)
            new = any(s.dead_letters > self._dead.get(name, 0) for name, s in stats.items())
            self._dead = {name: s.dead_letters for name, s in stats.items()}
            self.say(line, new)


def _say_status(line: str, dead_lettering: bool) -> None:
    err.print(escape(line), style="yellow" if dead_lettering else None)


@click.command("publish")
@click.argument("stream")
@broker_option
@topology_option
@click.option("--file", "-f", "path", type=click.Path(exists=True, dir_okay=False,
                                                      allow_dash=True),
              default="-", help="JSON lines to publish (default: stdin).")
@click.option("--timestamp-field", default=None, metavar="FIELD",
              help="Each record's timestamp (its event time, ms since the epoch) is this "
                   "top-level field of its line, an integer in every line (default: the wall "
                   "clock when sent).")
def publish_cmd(stream: str, broker: str | None, topology: str | None, path: str,
                timestamp_field: str | None) -> None:
    """Publish JSON lines into a stream. Every line is validated against the stream's schema
    and the broker's record size limit first: nothing is sent unless all are valid (an error
    names the line, and the field or the size, and the stream).
    Ctrl-C while sending stops before the next record and says how many were sent and
    acknowledged (waiting at most $DOA_SHUTDOWN_GRACE_S for the broker); twice: at once."""
    from doa.cli.interrupt import Sending
    from doa.client import Publisher
    from doa.cluster.reach import check_reachable
    from doa.engines.outage import shutdown_grace_s
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    grace_s = shutdown_grace_s()
    t = load_topology(topology) if topology else None
    with Publisher(stream, broker=address, topology=t, name="doa-publish") as pub:
        stream_in = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        with stream_in:
            records = _valid_lines(stream_in, pub.check, timestamp_field)  # schema, size, time
        sending = Sending(stream, len(records), grace_s, lambda: pub.acknowledged,
                          say=lambda line: err.print(escape(line)))
        with sending.interruptible():
            for record, timestamp_ms in records:
                if sending.interrupted:
                    break
                pub.send(record, timestamp_ms)
                sending.sent += 1
            try:
                pub.flush(sending.remaining_s() if sending.interrupted else 60.0)
            except DoaError:
                if not sending.interrupted:
                    raise
            if sending.interrupted:
                sending.report(pub.acknowledged)
                if pub.acknowledged < sending.sent:
                    sending.exit_now()
                raise SystemExit(sending.exit_code)
    n = pub.acknowledged
    err.print(f"published {n} record{'s' if n != 1 else ''} to {stream} (acknowledged)")


def _valid_lines(lines: Any, encode: Any, timestamp_field: str | None = None
                 ) -> list[tuple[dict[str, Any], int | None]]:
    """The JSON objects of ``lines``, each checked by ``encode``, with its timestamp (see
    :func:`_timestamp`); else one error naming every bad line, one line each (the first
    ``SHOWN_BAD``, then how many more; blank lines are skipped but counted)."""
    records: list[tuple[dict[str, Any], int | None]] = []
    bad: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = _record(line, number, encode)
                records.append((record, _timestamp(record, timestamp_field, number)))
            except DoaError as exc:
                bad.append(str(exc).removesuffix(NOTHING))
    if len(bad) == 1:
        raise DoaError(bad[0] + NOTHING)
    if bad:
        more = f"\n  and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else ""
        raise DoaError(f"{len(bad)} bad lines{NOTHING}:\n  "
                       + "\n  ".join(bad[:SHOWN_BAD]) + more)
    return records


NOTHING, SHOWN_BAD = "; nothing was published", 20  # and the bad lines an error shows


def _record(line: str, number: int, encode: Any) -> dict[str, Any]:
    """Line ``number``'s JSON object, checked by ``encode``; else a one-line error.

    >>> _record('{"t": 20.5, "h": NaN}', 3, None)
    Traceback (most recent call last):
    doa.errors.DoaError: line 3, column 18: not valid JSON (NaN: JSON has no NaN or Infinity, \
Python's json.dumps writes them): write null for an optional field, or leave the record out
    """
    try:
        record = orjson.loads(line.rstrip("\r\n"))
    except orjson.JSONDecodeError as exc:  # its own "line 1" would be a second number
        nan = re.match(r"-?(NaN|Infinity)", exc.doc[exc.pos - exc.doc[:exc.pos].endswith("-"):])
        why = f"{exc.msg})" if not nan else (f"{nan[0]}: JSON has no NaN or Infinity, Python's "
               "json.dumps writes them): write null for an optional field, or leave the record out")
        raise DoaError(f"line {number}, column {exc.colno}: not valid JSON ({why}") from exc
    if not isinstance(record, dict):
        raise DoaError(f"line {number}: expected a JSON object, got {type(record).__name__}")
    try:
        encode(record)
    except DoaError as exc:
        raise DoaError(f"line {number}: {_exact(line, encode, exc)}") from exc
    return record


def _timestamp(record: dict[str, Any], field: str | None, number: int) -> int | None:
    """``record``'s ``field``, its timestamp in ms (None without a field: the wall clock);
    an error naming line ``number`` unless it is an integer of at least 0.

    >>> _timestamp({"ts": 1700000000000}, "ts", 1)
    1700000000000
    >>> _timestamp({"ts": 1700000000000}, None, 1) is None
    True
    >>> _timestamp({"ts": "noon"}, "ts", 3)
    Traceback (most recent call last):
    doa.errors.DoaError: line 3: --timestamp-field ts: expected ms since the epoch \
(an integer >= 0), got str 'noon'; nothing was published
    >>> _timestamp({"time": 1}, "ts", 4)
    Traceback (most recent call last):
    doa.errors.DoaError: line 4: --timestamp-field ts: expected ms since the epoch \
(an integer >= 0), the line has no field 'ts'; nothing was published
    """
    if field is None:
        return None
    value = record.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    got = (f"the line has no field {field!r}" if field not in record
           else f"got {type(value).__name__} {value!r}")
    raise DoaError(f"line {number}: --timestamp-field {field}: expected ms since the epoch "
                   f"(an integer >= 0), {got}{NOTHING}")


def _exact(line: str, encode: Any, exc: DoaError) -> DoaError:
    """The error of ``line`` as the user wrote it: orjson reads an integer beyond 64 bits as a
    float (``1e+23``), so an error naming such a value comes again from Python's own reader
    (``got int 99999999999999999999999``, not ``got float 1e+23``)."""
    import json

    try:
        encode(json.loads(line))
    except DoaError as exact:
        return exact
    except ValueError:
        pass
    return exc


IDLE_S = 5.0


@click.command("subscribe")
@click.argument("streams", nargs=-1, required=True)
@broker_option
@topology_option
@click.option("--from-beginning", is_flag=True, help="Start at the beginning of the streams.")
@click.option("--limit", "-n", type=click.IntRange(min=1), default=None,
              help="Stop after N records.")
@click.option("--group", "-g", default=None, help="Consumer group (default: none).")
@click.option("--idle", type=float, default=None, metavar="SECONDS",
              help=f"Stop after this many seconds without a record (default: {IDLE_S:g}).")
@click.option("--follow", is_flag=True, help="Wait for new records forever (no idle stop).")
@click.option("--meta", is_flag=True,
              help="Wrap each record with its stream/offset/key/id and lineage parents.")
def subscribe_cmd(streams: tuple[str, ...], broker: str | None, topology: str | None,
                  from_beginning: bool, limit: int | None, group: str | None,
                  idle: float | None, follow: bool, meta: bool) -> None:
    """Print records of streams as JSON lines; a record that cannot be decoded is one line on
    stderr (stream, partition, offset, reason), and their count is printed at the end."""
    from doa.client import RecordError, Subscriber
    from doa.cluster.reach import check_reachable
    from doa.topology.loader import load_topology

    if follow and idle is not None:
        raise click.UsageError("--follow waits forever; --idle stops when idle: give one")
    idle_s = None if follow else (IDLE_S if idle is None else idle)
    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    t = load_topology(topology) if topology else None
    n = shown = 0
    from doa.cli.interrupt import interrupt_within

    interrupt_within(5.0)
    with Subscriber(streams, broker=address, topology=t, group=group,
                    from_beginning=from_beginning, idle_timeout_s=idle_s,
                    on_error="yield") as sub:
        for event in sub:
            if isinstance(event, RecordError):
                err.print(f"undecodable: {escape(str(event))}")
                if not (meta and event.record is not None):
                    continue
                shown += 1  # only its lineage header is unreadable: --meta shows it so
            item = dict(event) if not meta and not isinstance(event, RecordError) \
                else meta_item(event)
            sys.stdout.buffer.write(orjson.dumps(item, default=json_default) + b"\n")
            sys.stdout.flush()
            n += 1
            if limit is not None and n >= limit:
                break
    if sub.errors:
        err.print(f"{sub.errors} undecodable record{'s' if sub.errors != 1 else ''} ("
                  + (f"{shown} with an unreadable lineage header on stdout with "
                     "\"lineage_error\", the others " if shown else "")
                  + "not printed on stdout)")
    if idle_s is not None and (limit is None or n < limit):
        err.print(f"{n} record{'s' if n != 1 else ''}; none new for {idle_s:g} s, stopped "
                  "(--follow waits for more)")


def meta_item(event: Any) -> dict[str, Any]:
    """What ``--meta`` prints of an :class:`doa.events.Event`, or of a
    :class:`doa.client.RecordError` whose only fault is its lineage header (``id``, ``node``
    null, ``parents`` empty and ``lineage_error`` saying why)."""
    from doa.client import RecordError

    unreadable = isinstance(event, RecordError)
    lineage = None if unreadable else event.lineage
    item = {"stream": event.stream, "partition": event.partition, "offset": event.offset,
            "timestamp": event.timestamp,
            "key": event.key.decode(errors="replace") if event.key else None,
            "id": None if unreadable else event.id.hex(),
            "node": lineage.node if lineage else None,
            "parents": [p.hex() for p in lineage.parents] if lineage else [],
            "record": event.record if unreadable else dict(event)}
    if unreadable:
        item["lineage_error"] = event.detail
    return item
