"""``doa dlq``: a topology's dead letters, listed or replayed after a fix."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from doa.cli.console import err, out
from doa.cli.options import broker_option, need_broker
from doa.errors import DoaError


@click.command("dlq")
@click.argument("topology")
@broker_option
@click.option("--replay", is_flag=True,
              help="Re-publish the dead letters not replayed before to their streams, once.")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=50, show_default=True,
              help="List at most N dead letters (all are counted).")
@click.option("--open", "only_open", is_flag=True,
              help="List only the dead letters not replayed yet.")
@click.option("--node", default=None, metavar="NAME", help="List only this node's letters.")
def dlq_cmd(topology: str, broker: str | None, replay: bool, limit: int, only_open: bool,
            node: str | None) -> None:
    """List a topology's dead letters, or replay them after a fix."""
    from doa import dlq
    from doa.client import RecordError
    from doa.cluster.reach import check_reachable
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    t = load_topology(topology)
    if replay:
        _replay(address, t)
        return
    if node is not None and node not in t.nodes:
        raise DoaError(f"--node {node!r}: topology {t.name!r} has no such node (its nodes: "
                       f"{', '.join(sorted(t.nodes))})")
    letters = dlq.dead_letters(address, t)  # no dead-letter stream: one line, no heading
    done = dlq.replayed_up_to(address, t)
    # One letter, two lines: where, node, error type and size (the line to grep), then why. A
    # table cut them short at 80 columns (a pipe, or a terminal): the message went first.
    out.print(escape(f"dead letters of {t.name} ({t.dead_letters.name})"))
    counted = shown = bad = still = 0
    for letter in letters:
        waiting = letter.offset >= done.get(letter.partition, 0)
        if isinstance(letter, RecordError):
            err.print(f"undecodable letter: {escape(str(letter))}")
            bad += 1
            continue
        if (node is not None and letter["node"] != node) or (only_open and not waiting):
            continue
        counted += 1
        still += waiting
        if shown < limit:
            shown += 1
            _show(letter, waiting)
    which = "" if node is None else f" of node {node}"
    out.print(f"{counted} dead letters{which}" + (f" (first {limit} shown)" if counted > limit
                                                   else "")
              + f"; {still} not replayed yet" + (" (`doa dlq --replay` sends them)" if still
                                                 else "")
              + (f"; {bad} that cannot be decoded" if bad else ""))


def _show(letter: Any, waiting: bool) -> None:
    where = f"{letter['stream']}/{letter['partition']}@{letter['offset']}"
    original = letter.get("original")
    if original:
        where += (f" (replay {letter['attempt']} of {original['stream']}/"
                  f"{original['partition']}@{original['offset']})")
    state = "" if waiting else "  replayed"
    out.print(escape(f"{where}  node {letter['node']}  {letter['error_type']}  "
                     f"({len(letter['raw'])} bytes){state}"))
    out.print(escape(f"    {letter['message']}"))


def _replay(address: str, topology: Any) -> None:
    from doa import dlq

    report = dlq.replay(address, topology)
    for line in report.skipped:
        err.print(f"skipped: {escape(line)}")
    for line in report.failed:
        err.print(escape(line))
    per_stream = ", ".join(f"{n} to {s}" for s, n in report.replayed.items())
    out.print(f"replayed {report.total} dead letters" + (f": {per_stream}" if per_stream else "")
              + f"; {len(report.failed)} failed, {len(report.skipped)} skipped")
    if report.failed:
        raise DoaError(f"{len(report.failed)} dead letter{'s' if len(report.failed) != 1 else ''}"
                       f" not replayed: they stay in {topology.dead_letters.name} and the next "
                       "--replay tries them again")
