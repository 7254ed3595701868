"""``doa catalog``: what exists on a broker (streams, schemas, writers, readers, nodes);
``doa catalog forget NAME``: a topology that no longer runs is no longer listed nor counted."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from doa.cli.console import err, out, tables
from doa.cli.options import broker_option, need_broker


@click.group("catalog", invoke_without_command=True)
@broker_option
@click.option("--json", "as_json", is_flag=True, help="Print the catalog as JSON (the shape "
              "is documented in doa.catalog.collect).")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True),
              default=None, metavar="FILE",
              help="Also write a self-contained HTML page (no network needed to view it).")
@click.option("--all", "show_all", is_flag=True,
              help="Also describe internal topics (_doa_*, node state, Kafka's own).")
@click.option("--fields", is_flag=True, help="Also print every stream's schema fields.")
@click.option("--sample", default=64, show_default=True,
              help="Recent records read per partition to name who writes a stream.")
@click.pass_context
def catalog_cmd(ctx: click.Context, broker: str | None, as_json: bool, html_file: str | None,
                show_all: bool, fields: bool, sample: int) -> None:
    """Every stream on a broker with its schema, writers, readers, counts and rates, and
    every node with its processes and whether they are alive. Needs only a broker.

    `doa catalog forget NAME` forgets a topology that no longer runs.
    """
    if ctx.invoked_subcommand is not None:
        ctx.obj = broker  # `doa catalog --broker B forget NAME` works too
        return
    from doa.catalog.collect import collect
    from doa.cluster.reach import check_reachable

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    catalog = collect(address, include_internal=show_all, sample=sample)
    if html_file:
        from doa.catalog.html import page_html

        Path(html_file).write_text(page_html(catalog), encoding="utf-8")
        err.print(f"wrote {html_file}")
    if as_json:
        click.echo(orjson.dumps(catalog, option=orjson.OPT_INDENT_2).decode())
        return
    from doa.catalog.render import renderables

    console = tables()
    for part in renderables(catalog, fields=fields):
        console.print(part)


@catalog_cmd.command("forget")
@click.argument("name")
@broker_option
@click.pass_obj
def forget_cmd(given: str | None, name: str, broker: str | None) -> None:
    """Forget topology NAME (renamed or retired): the catalog no longer lists it and doa run,
    deploy and check --broker no longer count the streams it wrote. Refused while it runs; a
    process of it started later counts again."""
    from doa.catalog.forget import forget
    from doa.cluster.reach import check_reachable

    address = need_broker(broker or given)
    check_reachable(address, timeout_s=4.0)
    keys = forget(address, name)
    out.print(f"forgot topology {name!r} on {address} ({len(keys)} process"
              f"{'es' if len(keys) != 1 else ''}); it counts again when it runs again")
