"""``doa subscribe``: a stream's records as JSON lines."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.markup import escape

from doa.cli.console import err
from doa.cli.options import broker_option, json_default, need_broker, topology_option

__all__ = ["meta_item", "subscribe_cmd"]

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
    stderr (stream, partition, offset, reason), and their count is printed at the end.
    A NaN or infinite float or double is the string "NaN", "Infinity" or "-Infinity" (as in
    Avro's JSON encoding; `doa publish` reads them back)."""
    from doa.client import RecordError, Subscriber
    from doa.cluster.reach import check_reachable
    from doa.collect.nonfinite import dumps
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
            sys.stdout.buffer.write(dumps(item, default=json_default) + b"\n")
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
