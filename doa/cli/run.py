"""``doa run``: a topology's nodes on a broker, with a status line of their counts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from doa.cli.console import err, out, say
from doa.cli.options import Duration, broker_option
from doa.engines import NodeStats
from doa.errors import DoaError
from doa.local.embedded import configured_broker

__all__ = ["StatusTicker", "busy_rate", "numba_nodes", "run_cmd", "stats_table", "summary_line"]


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


def busy_rate(s: NodeStats, seconds: float) -> float:
    """Records in per second from the node's first batch to its last (walk 8: over the whole
    run, a node that read 20,000 records in 1.2 s and then waited said 46/s); over the run's
    ``seconds`` when that span is under half a second.

    >>> busy_rate(NodeStats(records_in=20_000, first_batch_at=10.0, last_batch_at=11.25), 400)
    16000.0
    >>> busy_rate(NodeStats(records_in=30, first_batch_at=10.0, last_batch_at=10.0), 3.0)
    10.0
    """
    first, last = s.first_batch_at, s.last_batch_at
    span = 0.0 if first is None or last is None else last - first
    if span >= 0.5:
        return s.records_in / span
    return s.records_in / seconds if seconds > 0 else 0.0


def stats_table(stats: dict[str, NodeStats], seconds: float) -> Table:
    skips = any(s.skipped for s in stats.values())  # a column only when a replay was skipped
    table = Table(title=f"run summary ({seconds:.1f} s)")
    for col in ("node", "records in", "records out", "dead letters",
                *(("skipped",) if skips else ()), "snapshots", "records/s busy"):
        table.add_column(col, justify="left" if col == "node" else "right")
    for name, s in stats.items():
        rate = busy_rate(s, seconds)
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
    from doa.engines.signals import stop_before_start, stopped_before_start

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

    try:
        t = load_topology(topology)
    except DoaError:
        if stopped_before_start():  # SIGTERM while it imported: a stop, not a broken file
            raise SystemExit(0) from None
        raise
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
                 say=say, metrics_port=metrics_port)
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
    their reason: :mod:`doa.runtime.tell`); a line when a node's group assigns it other
    partitions (:class:`Assignments`)."""

    def __init__(self, idle_s: float = 10.0, dead_letters: str = "dead letters",
                 say: Callable[[str, bool], None] | None = None) -> None:
        self.idle_s = idle_s
        self.dead_letters = dead_letters
        self.say = say or _say_status
        self._shown: tuple[tuple[int, int, int, int], ...] | None = None
        self._dead: dict[str, int] = {}
        self._at = 0.0
        self._assignment = Assignments()

    def __call__(self, elapsed: float, stats: dict[str, NodeStats]) -> None:
        for name, s in stats.items():
            line = self._assignment.line(name, getattr(s, "assigned", None))
            if line is not None:
                self.say(f"[{elapsed:6.1f}s] {line}", False)
        counts = tuple((s.records_in, s.records_out, s.dead_letters, s.skipped)
                       for s in stats.values())
        if counts != self._shown or elapsed - self._at >= self.idle_s:
            self._shown, self._at = counts, elapsed
            line = summary_line(elapsed, stats, self.dead_letters, self._dead)
            new = any(s.dead_letters > self._dead.get(name, 0) for name, s in stats.items())
            self._dead = {name: s.dead_letters for name, s in stats.items()}
            self.say(line, new)


class Assignments:
    """The partitions line: what a node's group assigned it (the kafka engine's stats say,
    :class:`doa.engines.group.GroupStats`), when it differs from the last one said.

    Examples
    --------
    >>> a = Assignments()
    >>> a.line("featurize", {"readings": (0, 1, 2, 3)})
    'featurize: partitions of readings: 0, 1, 2, 3'
    >>> a.line("featurize", {"readings": (0, 1, 2, 3)}) is None  # no change, no line
    True
    >>> a.line("featurize", {"readings": (1, 3)})
    'featurize: partitions of readings: 1, 3 (was 0, 1, 2, 3)'
    >>> a.line("featurize", {"readings": ()})
    'featurize: partitions of readings: none (was 1, 3)'
    >>> a.line("count", None) is None  # not assigned yet, or an engine that does not say
    True
    """

    def __init__(self) -> None:
        self._said: dict[str, dict[str, tuple[int, ...]]] = {}

    def line(self, node: str, assigned: dict[str, tuple[int, ...]] | None) -> str | None:
        """The line for ``node`` now assigned ``assigned``, or None if there is none to say."""
        from doa.catalog.describe import numbers, partitions_text

        was = self._said.get(node)
        if assigned is None or assigned == was:
            return None
        self._said[node] = dict(assigned)
        text = f"{node}: partitions {partitions_text(assigned)}"
        if was is None:
            return text
        same = set(was) == set(assigned) and len(set(was.values())) == 1
        before = numbers(next(iter(was.values()))) if same else partitions_text(was)
        return f"{text} (was {before})"


def _say_status(line: str, dead_lettering: bool) -> None:
    err.print(escape(line), style="yellow" if dead_lettering else None)
