"""The catalog as one self-contained HTML page: inline CSS, a little inline JS, an SVG graph.

Nothing on the page loads anything from anywhere (no CDN, no font, no image): it opens from a
file with no network. The graph is drawn here, in SVG: publishers and streams with no writer
on the left, then streams and nodes in columns by their distance from those sources (a cycle,
such as a detector telling its learner of drift, draws its closing edge backwards).

Examples
--------
>>> catalog = {"broker": "b:9092", "collected_at": 0, "window_s": 60.0, "hidden": [],
...     "warnings": [], "topologies": [],
...     "streams": [{"name": s, "key": None, "partitions": 1, "compacted": False,
...                  "schema": None, "records": 1, "last_minute": 0, "rate_per_s": 0.0,
...                  "writers": [], "publishers": [], "readers": []} for s in ("a", "b")],
...     "nodes": [{"topology": "t", "name": "n<1>", "kind": "node", "reads": ["a"],
...                "writes": ["b"], "alive": False, "processes": []}]}
>>> page = page_html(catalog)
>>> page.startswith("<!DOCTYPE html>"), "n&lt;1&gt;" in page, "http" in page.split("<body")[0]
(True, True, False)
"""

from __future__ import annotations

import datetime
import json
from html import escape
from typing import Any

from doa.catalog.describe import partitions_text
from doa.catalog.read import HEADERLESS, NO_HEADER

COLUMN_W, ROW_H, BOX_W, BOX_H = 210, 54, 170, 34

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse;width:100%;background:#fff}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}
.alive{color:#1a7f37}.dead{color:#b42318}.dim{color:#777}
details summary{cursor:pointer}code{font-size:.92em}
svg{background:#fff;border:1px solid #ddd;max-width:100%;height:auto}
svg .stream rect{fill:#eef4ff;stroke:#4a6fa5}svg .node rect{fill:#fff6e5;stroke:#b7791f}
svg .publisher rect{fill:#f3f3f3;stroke:#888;stroke-dasharray:4 3}
svg .node.dead rect{stroke:#b42318}svg text{font:12px system-ui,sans-serif}
svg path{fill:none;stroke:#999;marker-end:url(#arrow)}
#filter{padding:4px 8px;width:20em}
"""

SCRIPT = """
document.getElementById('filter').addEventListener('input', function (e) {
  var q = e.target.value.toLowerCase();
  document.querySelectorAll('tr.stream-row').forEach(function (row) {
    row.style.display = row.dataset.name.toLowerCase().indexOf(q) >= 0 ? '' : 'none';
  });
});
"""


def page_html(catalog: dict[str, Any]) -> str:
    """The whole page for ``catalog`` (the dict of :func:`doa.catalog.collect`)."""
    when = datetime.datetime.fromtimestamp(catalog.get("collected_at", 0) / 1000,
                                           datetime.timezone.utc)
    title = f"doa catalog: {catalog['broker']}"
    body = [f"<h1>{escape(title)}</h1>",
            f"<p class=dim>collected {when:%Y-%m-%d %H:%M:%S} UTC; "
            f"{len(catalog['streams'])} streams, {len(catalog['nodes'])} nodes</p>",
            "<h2>Graph</h2>", graph_svg(catalog),
            "<h2>Streams</h2>",
            "<input id=filter placeholder='filter streams by name' aria-label=filter>",
            _streams(catalog), "<h2>Nodes</h2>", _nodes(catalog)]
    if catalog.get("hidden"):
        body.append(f"<p class=dim>internal topics not shown: "
                    f"{escape(', '.join(catalog['hidden']))}</p>")
    body.extend(f"<p class=dim>note: {escape(w)}</p>" for w in catalog.get("warnings") or ())
    data = json.dumps(catalog).replace("</", "<\\/")
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(body)
            + f"\n<script type=application/json id=catalog>{data}</script>"
            + f"<script>{SCRIPT}</script></body></html>\n")


def _streams(catalog: dict[str, Any]) -> str:
    window = catalog.get("window_s", 60.0)
    rows = ["<table id=streams><tr><th>stream</th><th>key</th><th>partitions</th>"
            f"<th>schema</th><th>records</th><th>last {window:g} s</th><th>written by</th>"
            "<th>read by</th></tr>"]
    for s in catalog["streams"]:
        writers = [f"{escape(w['node'])} {_dot(w.get('alive'))}" for w in s.get("writers", ())]
        writers += [HEADERLESS if p["name"] == NO_HEADER else
                    f"{escape(p['name'])} <span class=dim>(publisher)</span>"
                    for p in s.get("publishers", ())]
        readers = [f"{escape(r['group'])} <span class=dim>(lag "
                   f"{'-' if r.get('lag') is None else format(r['lag'], ',')})</span>"
                   for r in s.get("readers", ())]
        compacted = " <span class=dim>compacted</span>"
        rows.append(
            f"<tr class=stream-row data-name='{escape(s['name'])}'>"
            f"<td><b>{escape(s['name'])}</b>{compacted if s.get('compacted') else ''}</td>"
            f"<td>{escape(str(s.get('key') or '-'))}</td><td class=n>{s['partitions']}</td>"
            f"<td>{_schema(s.get('schema'))}</td><td class=n>{s['records']:,}</td>"
            f"<td class=n>{s['last_minute']:,} ({s['rate_per_s']:,.1f}/s)</td>"
            f"<td>{'<br>'.join(writers) or '-'}</td><td>{'<br>'.join(readers) or '-'}</td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _schema(schema: dict[str, Any] | None) -> str:
    if not schema:
        return "<span class=dim>no registered schema</span>"
    version = f" v{schema['version']}" if schema.get("version") else ""
    fields = "".join(f"<tr><td><code>{escape(str(f['name']))}</code></td>"
                     f"<td><code>{escape(str(f['type']))}</code></td>"
                     f"<td>{escape(str(f.get('doc') or ''))}</td></tr>"
                     for f in schema.get("fields", ()))
    versions = ", ".join(f"v{v['version']} <code>{escape(str(v['fingerprint']))}</code>"
                         for v in schema.get("versions", ()))
    return (f"<details><summary>{escape(str(schema['name']))}{version} "
            f"({len(schema.get('fields', ()))} fields)</summary>"
            f"<p class=dim>{versions or 'not registered'}</p>"
            f"<table>{fields}</table></details>")


def _nodes(catalog: dict[str, Any]) -> str:
    rows = ["<table id=nodes><tr><th>node</th><th>topology</th><th>kind</th><th>reads</th>"
            "<th>writes</th><th>processes</th><th>settings</th></tr>"]
    for n in catalog["nodes"]:
        procs = "<br>".join(
            f"{escape(str(p['host']))}:{p['pid']} {escape(str(p.get('engine')))} "
            f"<span class={'alive' if p.get('alive') else 'dead'}>{escape(p['status'])}</span>"
            + (f", partitions {escape(partitions_text(p['partitions']))}"
               if p.get("partitions") is not None else "")
            for p in n.get("processes", ())) or "<span class=dim>none</span>"
        settings = escape(json.dumps(n.get("settings", {}), indent=1))
        dot = "<span class=dim>◐ starting</span>" if n.get("starting") else _dot(n.get("alive"))
        rows.append(f"<tr><td><b>{escape(n['name'])}</b> {dot}</td>"
                    f"<td>{escape(n['topology'])}</td><td>{escape(str(n.get('kind')))}</td>"
                    f"<td>{escape(', '.join(n.get('reads', ())))}</td>"
                    f"<td>{escape(', '.join(n.get('writes', ())))}</td><td>{procs}</td>"
                    f"<td><details><summary>settings</summary><pre>{settings}</pre>"
                    "</details></td></tr>")
    rows.append("</table>")
    return "\n".join(rows)


def _dot(alive: bool | None) -> str:
    return "<span class=alive>●</span>" if alive else "<span class=dead>○</span>"


def graph_edges(catalog: dict[str, Any]) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The graph's vertices (id -> class: ``stream``, ``node``, ``publisher``) and edges.

    >>> v, e = graph_edges({"streams": [{"name": "a", "publishers": [{"name": "p"}]}],
    ...                     "nodes": [{"topology": "t", "name": "n", "reads": ["a"],
    ...                                "writes": ["b"]}]})
    >>> sorted(v.items())
    [('node:t.n', 'node'), ('publisher:p', 'publisher'), ('stream:a', 'stream'),
     ('stream:b', 'stream')]
    >>> e
    [('publisher:p', 'stream:a'), ('stream:a', 'node:t.n'), ('node:t.n', 'stream:b')]

    Every node of a topology writes its dead letters (the topology's ``dead_letters``, or a
    node's own ``dead_letters`` key) to that stream:

    >>> _, e = graph_edges({"streams": [], "topologies": [{"name": "t", "dead_letters": "t.dlq"}],
    ...                     "nodes": [{"topology": "t", "name": "n", "reads": [], "writes": []}]})
    >>> e
    [('node:t.n', 'stream:t.dlq')]
    """
    vertices: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    dlq = {t["name"]: t.get("dead_letters") for t in catalog.get("topologies", ())}
    for s in catalog["streams"]:
        vertices[f"stream:{s['name']}"] = "stream"
        for p in s.get("publishers", ()):
            vertices[f"publisher:{p['name']}"] = "publisher"
            edges.append((f"publisher:{p['name']}", f"stream:{s['name']}"))
    for n in catalog["nodes"]:
        me = f"node:{n['topology']}.{n['name']}"
        vertices[me] = "node"
        for r in n.get("reads", ()):
            vertices.setdefault(f"stream:{r}", "stream")
            edges.append((f"stream:{r}", me))
        writes = list(n.get("writes", ()))
        letters = n.get("dead_letters") or dlq.get(n["topology"])
        for w in writes + ([letters] if letters and letters not in writes else []):
            vertices.setdefault(f"stream:{w}", "stream")
            edges.append((me, f"stream:{w}"))
    return vertices, edges


def columns(vertices: dict[str, str], edges: list[tuple[str, str]]
            ) -> tuple[dict[str, int], set[tuple[str, str]]]:
    """Each vertex's column (the longest path to it from a vertex no edge enters) and the edges
    that close a cycle (found depth-first from those vertices), which the columns ignore.

    >>> columns({"a": "", "b": "", "c": "", "d": ""},
    ...         [("a", "b"), ("b", "c"), ("c", "b"), ("a", "c"), ("d", "c")])
    ({'a': 0, 'b': 1, 'c': 2, 'd': 0}, {('c', 'b')})
    """
    out: dict[str, list[str]] = {v: [] for v in vertices}
    into = {v: 0 for v in vertices}
    for a, b in edges:
        out[a].append(b)
        into[b] += 1
    back: set[tuple[str, str]] = set()
    order: list[str] = []  # reverse postorder: a topological order of the DAG left
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    roots = [v for v in sorted(vertices) if into[v] == 0] + sorted(vertices)
    for root in roots:
        if root in state:
            continue
        stack = [(root, iter(sorted(out[root])))]
        state[root] = 1
        while stack:
            v, children = stack[-1]
            for w in children:
                if state.get(w) == 1:
                    back.add((v, w))
                elif w not in state:
                    state[w] = 1
                    stack.append((w, iter(sorted(out[w]))))
                    break
            else:
                stack.pop()
                state[v] = 2
                order.append(v)
    column = {v: 0 for v in vertices}
    for v in reversed(order):
        for w in out[v]:
            if (v, w) not in back:
                column[w] = max(column[w], column[v] + 1)
    return column, back


def graph_svg(catalog: dict[str, Any]) -> str:
    """An SVG drawing of publishers -> streams -> nodes -> streams."""
    vertices, edges = graph_edges(catalog)
    column, _ = columns(vertices, edges)
    rows: dict[int, int] = {}
    place: dict[str, tuple[int, int]] = {}
    for v in sorted(vertices, key=lambda v: (column[v], v)):
        row = rows.get(column[v], 0)
        rows[column[v]] = row + 1
        place[v] = (20 + column[v] * COLUMN_W, 20 + row * ROW_H)
    width = 40 + (max(column.values(), default=0) + 1) * COLUMN_W
    height = 40 + max(rows.values(), default=1) * ROW_H
    alive = {f"node:{n['topology']}.{n['name']}": n.get("alive") for n in catalog["nodes"]}
    parts = [f"<svg id=graph xmlns='http://www.w3.org/2000/svg' width={width} height={height} "
             f"viewBox='0 0 {width} {height}' role=img aria-label='nodes and streams'>",
             "<defs><marker id=arrow viewBox='0 0 10 10' refX=10 refY=5 markerWidth=7 "
             "markerHeight=7 orient=auto><path d='M0,0L10,5L0,10z' fill='#999' "
             "stroke=none /></marker></defs>"]
    for a, b in edges:
        (x1, y1), (x2, y2) = place[a], place[b]
        x1, y1, y2 = x1 + BOX_W, y1 + BOX_H // 2, y2 + BOX_H // 2
        bend = max(40, abs(x2 - x1) // 2)
        parts.append(f"<path d='M{x1},{y1} C{x1 + bend},{y1} {x2 - bend},{y2} {x2},{y2}'/>")
    for v, kind in vertices.items():
        x, y = place[v]
        label = v.split(":", 1)[1]
        if kind == "node":
            label = label.split(".", 1)[1]
        state = " dead" if kind == "node" and not alive.get(v) else ""
        parts.append(f"<g class='{kind}{state}' data-id='{escape(v)}'>"
                     f"<rect x={x} y={y} width={BOX_W} height={BOX_H} rx="
                     f"{16 if kind == 'stream' else 3} />"
                     f"<text x={x + 8} y={y + 21}>{escape(_short(label))}</text>"
                     f"<title>{escape(kind)} {escape(label)}</title></g>")
    parts.append("</svg>")
    return "".join(parts)


def _short(text: str, width: int = 24) -> str:
    return text if len(text) <= width else text[:width - 1] + "…"
