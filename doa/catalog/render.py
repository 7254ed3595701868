"""The catalog in a terminal: rich tables of streams, nodes and (on request) schema fields.

Examples
--------
>>> import io
>>> from rich.console import Console
>>> catalog = {"broker": "b:9092", "collected_at": 10_000, "window_s": 60.0, "hidden": ["_x"],
...     "warnings": [], "topologies": [],
...     "streams": [{"name": "a", "key": "k", "partitions": 2, "compacted": False,
...                  "schema": {"name": "A", "version": 1, "fields": [
...                      {"name": "k", "type": "string", "doc": "the key"}]},
...                  "records": 12, "last_minute": 6, "rate_per_s": 0.1,
...                  "writers": [{"topology": "t", "node": "n", "alive": True, "sampled": 3}],
...                  "publishers": [{"name": "demo", "sampled": 2}],
...                  "readers": [{"group": "t.m", "node": "m", "lag": 4}]}],
...     "nodes": [{"topology": "t", "name": "n", "kind": "node", "reads": ["x"],
...                "writes": ["a"], "alive": True, "processes": [{"host": "h", "pid": 7,
...                "engine": "kafka", "status": "running", "last_seen": 9_000,
...                "partitions": {"x": [0, 1]}}]}]}
>>> console = Console(file=io.StringIO(), width=200, record=True, color_system=None)
>>> for part in renderables(catalog, fields=True):
...     console.print(part)
>>> text = console.export_text()
>>> all(w in text for w in ("A v1 (1 field)", "n ●", "demo", "t.m (lag 4)", "the key",
...                         "h:7 kafka running 1 s ago, partitions of x: 0, 1",
...                         "1 internal topic hidden"))
True
"""

from __future__ import annotations

from typing import Any

from rich.console import RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from doa.catalog.describe import partitions_text
from doa.catalog.read import HEADERLESS, NO_HEADER


def renderables(catalog: dict[str, Any], *, fields: bool = False) -> list[RenderableType]:
    """What ``doa catalog`` prints: the streams, the nodes, optionally every stream's fields,
    then a line on hidden topics and the broker's refusals."""
    parts: list[RenderableType] = [streams_table(catalog), nodes_table(catalog)]
    if fields:
        parts.extend(fields_table(s) for s in catalog["streams"] if s.get("schema"))
    notes = []
    hidden = len(catalog.get("hidden") or ())
    if hidden:
        notes.append(f"{hidden} internal topic{'s' if hidden != 1 else ''} hidden (--all shows "
                     "them)")
    notes.extend(f"note: {w}" for w in catalog.get("warnings") or ())
    parts.extend(Text(n, style="dim") for n in notes)
    return parts


def streams_table(catalog: dict[str, Any]) -> Table:
    window = catalog.get("window_s", 60.0)
    table = Table(title=f"streams on {escape(catalog['broker'])}", title_justify="left")
    for col, right in (("stream", False), ("key", False), ("part.", True), ("schema", False),
                       ("records", True), (f"last {window:g} s", True), ("/s", True),
                       ("written by", False), ("read by", False)):
        table.add_column(col, justify="right" if right else "left", overflow="fold")
    for s in catalog["streams"]:
        schema = s.get("schema")
        label = "-" if not schema else (
            f"{schema['name']}" + (f" v{schema['version']}" if schema.get("version") else "")
            + f" ({_fields(schema)})")
        name = s["name"] + (" (internal)" if s.get("internal") else "") + (
            " (compacted)" if s.get("compacted") else "")
        table.add_row(escape(name), escape(str(s.get("key") or "-")), str(s["partitions"]),
                      escape(label), f"{s['records']:,}", f"{s['last_minute']:,}",
                      f"{s['rate_per_s']:,.1f}", escape(_writers(s)), escape(_readers(s)))
    return table


def _fields(schema: dict[str, Any]) -> str:
    n = len(schema.get("fields", ()))
    return f"{n} field{'s' if n != 1 else ''}"


def _writers(s: dict[str, Any]) -> str:
    """Nodes and publishers that wrote the stream's sampled records.

    >>> _writers({"publishers": [{"name": "demo"}, {"name": NO_HEADER}]})
    'demo (publisher), records without a doa header'
    """
    parts = [f"{w['node']} {_dot(w.get('alive'))}" for w in s.get("writers", ())]
    parts += [HEADERLESS if p["name"] == NO_HEADER else f"{p['name']} (publisher)"
              for p in s.get("publishers", ())]
    return ", ".join(parts) or "-"


def _readers(s: dict[str, Any]) -> str:
    parts = []
    for r in s.get("readers", ()):
        lag = "no commit yet" if r.get("lag") is None else f"lag {r['lag']:,}"
        parts.append(f"{r['group']} ({lag})")
    return ", ".join(parts) or "-"


def _dot(alive: bool | None) -> str:
    return "●" if alive else "○"


def nodes_table(catalog: dict[str, Any]) -> Table:
    now = catalog.get("collected_at", 0)
    table = Table(title="nodes (● alive: a heartbeat within 3 intervals; ◐ starting: alive, "
                  "its nodes loading)", title_justify="left")
    for col in ("node", "topology", "kind", "reads", "writes", "processes"):
        table.add_column(col, overflow="fold")
    for n in catalog["nodes"]:
        procs = "\n".join(
            f"{p['host']}:{p['pid']} {p.get('engine') or '?'} {p['status']} "
            f"{_ago(now, p.get('last_seen'))}" + (f": {p['error']}" if p.get("error") else "")
            + (f", partitions {partitions_text(p['partitions'])}"
               if p.get("partitions") is not None else "")
            for p in n.get("processes", ())) or "none"
        dot = "◐ starting" if n.get("starting") else _dot(n.get("alive"))
        table.add_row(escape(f"{n['name']} {dot}"), escape(n["topology"]),
                      escape(str(n.get("kind"))), escape(", ".join(n.get("reads", ()))),
                      escape(", ".join(n.get("writes", ()))), escape(procs))
    return table


def _ago(now: int, then: int | None) -> str:
    """``12 s ago``: how long before ``now`` (ms) ``then`` (ms) was.

    >>> _ago(100_000, 40_000), _ago(200_000, 20_000), _ago(10_000_000, 2_000_000), _ago(1, None)
    ('60 s ago', '3 min ago', '2 h ago', '')
    """
    if then is None:
        return ""
    s = max(0.0, (now - then) / 1000)
    if s < 90:
        return f"{s:.0f} s ago"
    if s < 5400:
        return f"{s / 60:.0f} min ago"
    return f"{s / 3600:.0f} h ago"


def fields_table(stream: dict[str, Any]) -> Table:
    schema = stream["schema"]
    versions = ", ".join(f"v{v['version']} {v['fingerprint']}"
                         for v in schema.get("versions", ())) or "not registered"
    table = Table(title=f"{escape(stream['name'])}: {escape(str(schema['name']))} "
                        f"({escape(versions)})", title_justify="left")
    for col in ("field", "type", "doc"):
        table.add_column(col, overflow="fold")
    for f in schema.get("fields", ()):
        table.add_row(escape(str(f["name"])), escape(str(f["type"])),
                      escape(str(f.get("doc") or "")))
    return table
