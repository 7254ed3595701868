"""``doa lineage EVENT``: where a record came from and what came of it, read from the log."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from doa.cli.console import out
from doa.cli.options import broker_option, json_default, need_broker


@click.command("lineage")
@click.argument("event")
@click.argument("topology", required=False)
@broker_option
@click.option("--records", is_flag=True, help="Show each record's decoded fields.")
@click.option("--json", "as_json", is_flag=True, help="Print the trace as JSON.")
@click.option("--prov", is_flag=True, help="Print a W3C PROV-JSON document.")
@click.option("--depth", type=click.IntRange(min=0), default=8, show_default=True,
              help="Levels to walk back (ancestry) and forward (descendants).")
@click.option("--window", "window_ms", type=click.IntRange(min=0), default=1000,
              show_default=True, metavar="MS",
              help="Event-time slack of a descendant search (records written out of order).")
@click.option("--horizon", "horizon_ms", type=click.IntRange(min=0), default=60_000,
              show_default=True, metavar="MS",
              help="How long after a prediction its label is looked for (a learner with "
                   "max_delay_ms uses that).")
@click.option("--stream", "streams", multiple=True, metavar="STREAM",
              help="With an event id: a stream to look in; repeatable (default: all the "
                   "TOPOLOGY's streams; without a TOPOLOGY, required).")
@click.option("--at", "at_ms", type=int, default=None, metavar="MS",
              help="With an event id: its event time, so only --window around it is read.")
@click.option("--no-descendants", is_flag=True, help="Walk back only (no forward search).")
def lineage_cmd(event: str, topology: str | None, broker: str | None, records: bool,
                as_json: bool, prov: bool, depth: int, window_ms: int, horizon_ms: int,
                streams: tuple[str, ...], at_ms: int | None, no_descendants: bool) -> None:
    """Trace EVENT (STREAM:PARTITION:OFFSET, or a hex event id or its first 8+ digits) back
    to the raw input records it came from and forward to what came of it.

    Ancestry is one fetch per parent (headers carry their coordinates); descendants are
    searched in a bounded window after the record's time and need the TOPOLOGY file. An id
    is looked for in the --stream streams, else in the TOPOLOGY's.
    """
    import orjson

    from doa.cluster.reach import check_reachable
    from doa.collect.nonfinite import dumps
    from doa.lineage.find import find, parse_event
    from doa.lineage.log import Log
    from doa.lineage.render import as_dict, tree
    from doa.lineage.walk import trace
    from doa.topology.loader import load_topology

    if as_json and prov:
        raise click.UsageError("give one of --json and --prov")
    wanted = parse_event(event)  # a malformed EVENT first: the broker does not matter then
    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    t = load_topology(topology) if topology else None
    with Log(address, t) as log:
        for stream in streams:  # a misspelt --stream is an error, not a stream with nothing
            log.require(stream)
        root = find(log, wanted, streams, at_ms, window_ms)
        result = trace(log, root, depth=depth, window_ms=window_ms, horizon_ms=horizon_ms,
                       forward=not no_descendants and t is not None)
    if prov:
        from doa.lineage.prov import document

        data = document(result)
    elif as_json:
        data = as_dict(result, records)
    else:
        for line in tree(result, records):
            out.print(escape(line))
        out.print(f"[dim]{result.fetches} fetches, {result.seconds * 1000:.0f} ms"
                  + ("" if t is not None else "; no TOPOLOGY given: ancestry only") + "[/dim]")
        return
    sys.stdout.buffer.write(dumps(data, default=json_default, option=orjson.OPT_INDENT_2)
                            + b"\n")
