"""``doa ui``: a local web page over a running system (catalog, graph, records, lineage)."""

from __future__ import annotations

import click

from doa.cli.console import out
from doa.cli.options import broker_option, need_broker
from doa.errors import DoaError


@click.command("ui")
@click.argument("topologies", nargs=-1, metavar="[TOPOLOGY]...")
@broker_option
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="Port to serve on (0: any free port).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to serve on (the page shows your data: keep it local).")
@click.option("--all", "show_all", is_flag=True,
              help="With TOPOLOGY files, still show every topology on the broker (the page "
                   "shows theirs only, and links to all: ?all=1).")
def ui_cmd(topologies: tuple[str, ...], broker: str | None, port: int, host: str,
           show_all: bool) -> None:
    """Serve a live page of what exists on a broker: the catalog (refreshing), the graph of
    nodes and streams, the last records of any stream, drift and model-version events, and
    the lineage of a record. TOPOLOGY files (optional) decode streams with their schemas,
    draw nodes that are not running yet, let lineage search descendants, and limit the page
    to their nodes and streams (a line says which other topologies the broker holds)."""
    import asyncio

    try:
        from doa.ui.app import make_app, serve
    except ImportError as exc:
        if getattr(exc, "name", "") and str(exc.name).split(".")[0] in ("aiohttp", "multidict",
                                                                         "yarl"):
            raise DoaError("doa ui needs aiohttp: pip install 'doa[ui]'") from exc
        raise
    from doa.cluster.reach import check_reachable
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    loaded = [load_topology(t) for t in topologies]
    app = make_app(address, loaded, show_all=show_all)

    def ready(urls: list[str]) -> None:
        for url in urls:
            out.print(f"doa ui: serving {url} (broker {address}); Ctrl-C stops", markup=False)
        out.file.flush()

    asyncio.run(serve(app, host, port, ready))
