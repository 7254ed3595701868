"""``doa dlq``: a topology's dead letters, listed or replayed after a fix."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import click
from rich.markup import escape

from doa.cli.console import err, out
from doa.cli.options import broker_option, need_broker
from doa.errors import DoaError

REPLAY_HELP = """Re-publish the dead letters not replayed before to their streams, once each
(with --node: only that node's; runs of one node and of all mix without a letter sent twice).
A letter whose bytes are not a record of its stream (as the stream's registered schemas read
it) is not re-published: its node would only dead-letter it again. It stays in the dead-letter
stream, listed as undecodable: fix the producer that wrote it. Nor is a tombstone (a record
without a value): no doa node takes a null value. It stays too, listed as a tombstone."""

NO_NULLS = "doa nodes take no null values"  # the summaries' reason for a tombstone


@click.command("dlq")
@click.argument("topology")
@broker_option
@click.option("--replay", is_flag=True, help=REPLAY_HELP)
@click.option("--limit", "-n", type=click.IntRange(min=0), default=50, show_default=True,
              help="List at most N dead letters (all are counted).")
@click.option("--open", "only_open", is_flag=True,
              help="List only the dead letters not replayed yet (undecodable ones and "
                   "tombstones too).")
@click.option("--node", default=None, metavar="NAME",
              help="List, or replay, only this node's letters.")
def dlq_cmd(topology: str, broker: str | None, replay: bool, limit: int, only_open: bool,
            node: str | None) -> None:
    """List a topology's dead letters, or replay them after a fix.

    A letter is listed with where it was read, its node and error, then why; `replayed` on
    those a replay has sent, `undecodable` on those whose bytes are not a record of their
    stream (a replay never sends them: fix the producer; they stay listed), `tombstone` on
    those whose record had no value (a replay never sends them either: no doa node takes one).
    """
    from doa.cluster.reach import check_reachable
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    t = load_topology(topology)
    if node is not None and node not in t.nodes:
        raise DoaError(f"--node {node!r}: topology {t.name!r} has no such node (its nodes: "
                       f"{', '.join(sorted(t.nodes))})")
    if replay:
        _replay(address, t, node)
        return
    _list(address, t, limit, only_open, node)


def _list(address: str, t: Any, limit: int, only_open: bool, node: str | None) -> None:
    from doa.client import RecordError
    from doa.dlq_books import read_books
    from doa.dlq_read import TOMBSTONE, Readers, letter_node, letters

    readers = Readers(t, address)
    read = letters(address, t)  # no dead-letter stream: one line, no heading
    first = next(read, None)
    books = read_books(address, t.dead_letters.name, t.name, t.nodes)
    # One letter, two lines: where, node, error type and size (the line to grep), then why. A
    # table cut them short at 80 columns (a pipe, or a terminal): the message went first.
    out.print(escape(f"dead letters of {t.name} ({t.dead_letters.name})"))
    counted = shown = bad = still = broken = nulls = 0
    kinds: Counter[tuple[str, str]] = Counter()  # (node, error type): letters
    for letter in _chain(first, read):
        if isinstance(letter, RecordError):
            err.print(f"undecodable letter: {escape(str(letter))}")
            bad += 1
            continue
        kept = readers.kept(letter)  # (kind, why): a replay never sends it
        waiting = kept is not None or not books.replayed(letter.partition, letter.offset,
                                                         letter_node(letter))
        if (node is not None and letter["node"] != node) or (only_open and not waiting):
            continue
        counted += 1
        kinds[(str(letter["node"]), str(letter["error_type"]))] += 1
        nulls += kept is not None and kept[0] == TOMBSTONE
        broken += kept is not None and kept[0] != TOMBSTONE
        still += waiting and kept is None
        if shown < limit:
            shown += 1
            state = (f"  {kept[0]}, not replayed" if kept
                     else ("" if waiting else "  replayed"))
            _show(letter, state, kept[1] if kept else None)
    if counted > limit:  # the first ones listed may all be one kind (walk 6: 50 of 1,721)
        out.print(escape("by node and error: " + "; ".join(
            f"{n} {kind} {count:,}" for (n, kind), count in kinds.most_common())))
    which = "" if node is None else f" of node {node}"
    out.print(f"{counted} dead letters{which}" + (f" (first {limit} shown)" if counted > limit
                                                   else "")
              + f"; {still} not replayed yet" + (" (`doa dlq --replay` sends them)" if still
                                                 else "")
              + (f"; {broken} undecodable, not replayed: fix the producer" if broken else "")
              + (f"; {_tombstones(nulls)}, not replayed: {NO_NULLS}" if nulls else "")
              + (f"; {bad} that cannot be decoded" if bad else ""))


def _key(key: bytes | None) -> str:
    """The record's key as a letter's line shows it (walk 6: the key is what one looks for).

    >>> _key(b"card-17"), _key(b"\\xff\\x00"), _key(None)
    (", key 'card-17'", ', key 0xff00', '')
    """
    if key is None:
        return ""
    try:
        return f", key {key.decode()!r}"
    except UnicodeDecodeError:
        return f", key 0x{key.hex()}"


def _tombstones(n: int) -> str:
    """``1 tombstone``, ``2 tombstones``."""
    return f"{n} tombstone" + ("" if n == 1 else "s")


def _chain(first: Any, rest: Iterator[Any]) -> Iterator[Any]:
    """``first`` (read early: a missing stream is an error before the heading), then ``rest``."""
    if first is not None:
        yield first
        yield from rest


def _show(letter: Any, state: str, why: str | None) -> None:
    where = f"{letter['stream']}/{letter['partition']}@{letter['offset']}"
    original = letter.get("original")
    if original:
        where += (f" (replay {letter['attempt']} of {original['stream']}/"
                  f"{original['partition']}@{original['offset']})")
    out.print(escape(f"{where}  node {letter['node']}  {letter['error_type']}  "
                     f"({len(letter['raw'])} bytes{_key(letter.get('key'))}){state}"))
    message = str(letter["message"])
    out.print(escape(f"    {message}"))
    if why:  # the decoder's reason is often the node's message again (walk 7: 600 characters)
        said = why.replace(message, "as above") if message else why
        out.print(escape(f"    not replayed: {said}"))


def _replay(address: str, topology: Any, node: str | None) -> None:
    from doa import dlq

    report = dlq.replay(address, topology, node=node)
    for line in report.skipped:
        err.print(f"skipped: {escape(line)}")
    for line in report.undecodable:
        err.print(f"undecodable, not replayed: {escape(line)}")
    for line in report.tombstones:
        err.print(f"tombstone, not replayed: {escape(line)}")
    for line in report.failed:
        err.print(escape(line))
    per_stream = ", ".join(f"{n} to {s}" for s, n in report.replayed.items())
    which = "" if node is None else f" of node {node}"
    out.print(f"replayed {report.total} dead letters{which}"
              + (f": {per_stream}" if per_stream else "")
              + f"; {len(report.failed)} failed, {len(report.skipped)} skipped"
              + (f"; {len(report.undecodable)} undecodable, not replayed: fix the producer"
                 if report.undecodable else "")
              + (f"; {_tombstones(len(report.tombstones))}, not replayed: {NO_NULLS}"
                 if report.tombstones else "")
              + (f" (they stay in {topology.dead_letters.name}, listed)"
                 if report.undecodable or report.tombstones else ""))
    if report.failed:
        raise DoaError(f"{len(report.failed)} dead letter{'s' if len(report.failed) != 1 else ''}"
                       f" not replayed: they stay in {topology.dead_letters.name} and the next "
                       "--replay tries them again")
