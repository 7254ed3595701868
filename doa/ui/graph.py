"""The topology graph of ``doa ui``: vertices placed in columns and rows, for the page to draw.

Vertices and edges come from the catalog (:func:`doa.catalog.html.graph_edges`: publishers ->
streams -> nodes -> streams), plus the nodes of topology files given to ``doa ui`` that no
process has described yet (drawn as not alive). A vertex's column is its distance from the
longest path from the vertices no edge enters, once the edges that close a cycle (a detector
telling its learner of drift) are set aside by a depth-first search; so a node sits right of
every stream it reads. Within a column, vertices are ordered by the mean row of their
predecessors (one barycenter pass, left to right), which keeps a chain on one line and limits
crossings. The page (``static/app.js``) draws the result as inline SVG; an edge that closes a
cycle is flagged ``back``.

Examples
--------
>>> catalog = {"streams": [{"name": "a", "rate_per_s": 2.0, "publishers": [{"name": "feed"}]},
...                        {"name": "b", "rate_per_s": 0.0, "publishers": []}],
...            "nodes": [{"topology": "t", "name": "n", "reads": ["a"], "writes": ["b"],
...                       "alive": True}]}
>>> g = layout(catalog)
>>> [(v["id"], v["column"], v["row"]) for v in g["vertices"]]
[('publisher:feed', 0, 0), ('stream:a', 1, 0), ('node:t.n', 2, 0), ('stream:b', 3, 0)]
>>> [(e["from"], e["to"], e["back"]) for e in g["edges"]][:2]
[('publisher:feed', 'stream:a', False), ('stream:a', 'node:t.n', False)]
>>> g = layout({**catalog, "topologies": [{"name": "t", "dead_letters": "t.dlq"}]})
>>> [(e["to"], e["dead_letters"]) for e in g["edges"] if e["from"] == "node:t.n"]
[('stream:b', False), ('stream:t.dlq', True)]
>>> columns({"a": "", "b": "", "c": "", "d": ""},
...         [("a", "b"), ("b", "c"), ("c", "b"), ("d", "c")])
({'a': 0, 'b': 1, 'c': 2, 'd': 0}, {('c', 'b')})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from doa.catalog.html import columns, graph_edges

__all__ = ["BOX", "columns", "declared_nodes", "layout"]

COLUMN_W, ROW_H, MARGIN = 200, 54, 20
BOX = (160, 38)  # width, height of a vertex's box


def declared_nodes(topologies: Iterable[Any], catalog: dict[str, Any]) -> list[dict[str, Any]]:
    """Nodes of ``topologies`` the catalog does not list, in the catalog's node shape.

    >>> from doa import Topology
    >>> t = Topology("t")
    >>> s = t.stream("s", schema="doa.Metric")
    >>> _ = t.node(reads=s, writes=[], name="n")(lambda state, batch: (state, []))
    >>> [(n["name"], n["alive"]) for n in declared_nodes([t], {"nodes": []})]
    [('n', False)]
    >>> declared_nodes([t], {"nodes": [{"topology": "t", "name": "n"}]})
    []
    """
    known = {(n["topology"], n["name"]) for n in catalog.get("nodes", ())}
    out = []
    for t in topologies:
        for node in t.nodes.values():
            if (t.name, node.name) not in known:
                out.append({"topology": t.name, "name": node.name, "kind": node.kind,
                            "reads": list(node.reads), "writes": list(node.writes),
                            "dead_letters": t.dead_letters.name if t.dead_letters else None,
                            "alive": False, "declared_only": True})
    return out


def layout(catalog: dict[str, Any], extra_nodes: Iterable[dict[str, Any]] = ()) -> dict[str, Any]:
    """Vertices (id, kind, label, column, row, x, y, alive, rate) and edges of the graph."""
    nodes = [*catalog.get("nodes", ()), *extra_nodes]
    vertices, edges = graph_edges({"streams": catalog.get("streams", ()), "nodes": nodes,
                                   "topologies": catalog.get("topologies", ())})
    letters = _letter_edges(catalog, nodes)
    column, back = columns(vertices, edges)
    preds: dict[str, list[str]] = {v: [] for v in vertices}
    for a, b in edges:
        if (a, b) not in back:
            preds[b].append(a)
    row: dict[str, int] = {}
    for c in range(max(column.values(), default=-1) + 1):
        members = sorted(v for v in vertices if column[v] == c)

        def weight(v: str) -> tuple[float, str]:
            rows = [row[p] for p in preds[v] if p in row]
            return (sum(rows) / len(rows) if rows else float("inf"), v)

        for i, v in enumerate(sorted(members, key=weight)):
            row[v] = i
    alive = {f"node:{n['topology']}.{n['name']}": bool(n.get("alive")) for n in nodes}
    starting = {f"node:{n['topology']}.{n['name']}" for n in nodes if n.get("starting")}
    declared_only = {f"node:{n['topology']}.{n['name']}" for n in nodes if n.get("declared_only")}
    rates = {f"stream:{s['name']}": s.get("rate_per_s") for s in catalog.get("streams", ())}
    out_vertices = []
    for v in sorted(vertices, key=lambda v: (column[v], row[v])):
        kind = vertices[v]
        label = v.split(":", 1)[1]
        if kind == "node":
            label = label.split(".", 1)[1]
        out_vertices.append({
            "id": v, "kind": kind, "label": label, "column": column[v], "row": row[v],
            "x": MARGIN + column[v] * COLUMN_W, "y": MARGIN + row[v] * ROW_H,
            "alive": alive.get(v) if kind == "node" else None,
            "declared_only": v in declared_only, "starting": v in starting,
            "rate": rates.get(v)})
    n_columns = max(column.values(), default=0) + 1
    n_rows = max(row.values(), default=0) + 1
    return {"vertices": out_vertices,
            "edges": [{"from": a, "to": b, "back": (a, b) in back,
                       "dead_letters": (a, b) in letters} for a, b in edges],
            "width": 2 * MARGIN + (n_columns - 1) * COLUMN_W + BOX[0],
            "height": 2 * MARGIN + (n_rows - 1) * ROW_H + BOX[1], "box": list(BOX)}


def _letter_edges(catalog: dict[str, Any], nodes: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """The edges from each node to its topology's dead-letter stream (drawn dashed)."""
    dlq = {t["name"]: t.get("dead_letters") for t in catalog.get("topologies", ())}
    out = set()
    for n in nodes:
        letters = n.get("dead_letters") or dlq.get(n["topology"])
        if letters and letters not in n.get("writes", ()):
            out.add((f"node:{n['topology']}.{n['name']}", f"stream:{letters}"))
    return out
