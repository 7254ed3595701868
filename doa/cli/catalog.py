"""``doa catalog``: what exists on a broker (streams, schemas, writers, readers, nodes)."""

from __future__ import annotations

from pathlib import Path

import click
import orjson

from doa.cli.console import err, tables
from doa.cli.options import broker_option, need_broker


@click.command("catalog")
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
def catalog_cmd(broker: str | None, as_json: bool, html_file: str | None, show_all: bool,
                fields: bool, sample: int) -> None:
    """Every stream on a broker with its schema, writers, readers, counts and rates, and
    every node with its processes and whether they are alive. Needs only a broker."""
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
