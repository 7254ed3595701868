"""What ``doa ui TOPOLOGY`` shows: that topology's nodes and streams, not the whole broker's.

A broker may hold other topologies (another user's, on a shared embedded broker); the page
named its topology in its header but drew every node and stream. :func:`scoped` keeps the
nodes of the named topologies and the streams they declare, read, write or dead-letter to
(with the publishers and readers of those streams), and says which other topologies the
broker holds, so the page can say so in one line and offer to show all (``?all=1``, or
``doa ui --all``).

Examples
--------
>>> catalog = {
...     "streams": [{"name": "orders", "topologies": ["pricing"]},
...                 {"name": "events", "topologies": ["tally"]}],
...     "nodes": [{"topology": "pricing", "name": "price", "reads": ["orders"],
...                "writes": ["prices"]},
...               {"topology": "tally", "name": "count", "reads": ["events"], "writes": []}],
...     "topologies": [{"name": "pricing", "dead_letters": "pricing.dlq"},
...                    {"name": "tally", "dead_letters": "tally.dlq"}]}
>>> shown, others = scoped(catalog, ["pricing"])
>>> [s["name"] for s in shown["streams"]], [n["name"] for n in shown["nodes"]], others
(['orders'], ['price'], ['tally'])
>>> [t["name"] for t in shown["topologies"]]
['pricing']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["scoped", "topologies_of"]


def scoped(catalog: dict[str, Any], names: Sequence[str],
           declared: Iterable[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """``catalog`` cut to the topologies ``names`` (streams ``declared`` by their files kept
    too), and the sorted names of the broker's other topologies.

    Parameters
    ----------
    catalog : a catalog (:func:`doa.catalog.collect`)
    names : the topologies to show
    declared : streams the topology files declare (kept even when no node of the catalog
        reads or writes them yet)

    Examples
    --------
    >>> c = {"streams": [{"name": "a", "topologies": []}, {"name": "t.dlq"}],
    ...      "nodes": [], "topologies": [{"name": "t", "dead_letters": "t.dlq"}]}
    >>> [s["name"] for s in scoped(c, ["t"], declared=["a"])[0]["streams"]]
    ['a', 't.dlq']
    """
    wanted = set(names)
    nodes = [n for n in catalog.get("nodes", ()) if n.get("topology") in wanted]
    topologies = [t for t in catalog.get("topologies", ()) if t.get("name") in wanted]
    streams = set(declared)
    for n in nodes:
        streams.update(n.get("reads", ()), n.get("writes", ()))
    for t in topologies:
        streams.update(t.get("streams", ()))
        if t.get("dead_letters"):
            streams.add(t["dead_letters"])
    kept = [s for s in catalog.get("streams", ())
            if s["name"] in streams or wanted & set(s.get("topologies") or ())]
    others = sorted(topologies_of(catalog) - wanted)
    hidden = [h for h in catalog.get("hidden", ())  # internal: the others' state topics out
              if not any(h.startswith(f"{o}.") for o in others)]
    return ({**catalog, "streams": kept, "nodes": nodes, "topologies": topologies,
             "hidden": hidden}, others)


def topologies_of(catalog: dict[str, Any]) -> set[str]:
    """Every topology the catalog knows of (described, or owning a node).

    >>> sorted(topologies_of({"topologies": [{"name": "a"}], "nodes": [{"topology": "b"}]}))
    ['a', 'b']
    """
    return ({t["name"] for t in catalog.get("topologies", ()) if t.get("name")}
            | {n["topology"] for n in catalog.get("nodes", ()) if n.get("topology")})
