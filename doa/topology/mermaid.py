"""Render a topology as a Mermaid flowchart: streams as stadiums, nodes as boxes.

Examples
--------
>>> from doa.topology.topology import Topology
>>> from doa.wire.schema import builtin_schema_dir
>>> t = Topology("demo", schemas=builtin_schema_dir())
>>> a = t.stream("a", schema="doa.DeadLetter")
>>> @t.node(reads=a)
... def sink(state, batch):
...     return state, []
>>> print(mermaid(t))
flowchart LR
    s_demo_dlq(["demo.dlq<br/><small>doa.DeadLetter</small>"])
    s_a(["a<br/><small>doa.DeadLetter</small>"])
    n_sink["sink<br/><small>node</small>"]
    s_a --> n_sink
    n_sink -. dead letters .-> s_demo_dlq
"""

from __future__ import annotations

import re

from doa.topology.topology import Topology


class _Ids:
    """Mermaid ids for names: readable, and distinct even when names differ only in
    characters an id cannot hold (``a.b`` and ``a_b``)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[str, str], str] = {}
        self._used: set[str] = set()

    def __call__(self, prefix: str, name: str) -> str:
        found = self._ids.get((prefix, name))
        if found is None:
            base = prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)
            found, i = base, 1
            while found in self._used:
                i += 1
                found = f"{base}_{i}"
            self._used.add(found)
            self._ids[(prefix, name)] = found
        return found

    def __contains__(self, key: tuple[str, str]) -> bool:
        return key in self._ids


def _text(text: str) -> str:
    """Text safe inside a quoted Mermaid label."""
    return (text.replace("&", "#amp;").replace('"', "#quot;")
            .replace("<", "#lt;").replace(">", "#gt;"))


def mermaid(topology: Topology) -> str:
    """The topology as Mermaid ``flowchart LR`` source.

    A stream a node uses without declaring it is drawn too, marked ``undeclared``, so every
    edge joins declared Mermaid nodes even for a topology that does not pass ``check()``.
    """
    ids = _Ids()
    lines = ["flowchart LR"]
    for s in topology.streams.values():
        label = f"{_text(s.name)}<br/><small>{_text(s.schema)}</small>"
        lines.append(f'    {ids("s_", s.name)}(["{label}"])')
    for n in topology.nodes.values():
        for name in (*n.reads, *n.writes):
            if name not in topology.streams and ("s_", name) not in ids:
                label = f"{_text(name)}<br/><small>undeclared</small>"
                lines.append(f'    {ids("s_", name)}(["{label}"])')
    for n in topology.nodes.values():
        label = f"{_text(n.name)}<br/><small>{_text(n.kind)}</small>"
        lines.append(f'    {ids("n_", n.name)}["{label}"]')
    dlq = ids("s_", topology.dead_letters.name)
    for n in topology.nodes.values():
        for name in n.reads:
            lines.append(f"    {ids('s_', name)} --> {ids('n_', n.name)}")
        for name in n.writes:
            lines.append(f"    {ids('n_', n.name)} --> {ids('s_', name)}")
        lines.append(f"    {ids('n_', n.name)} -. dead letters .-> {dlq}")
    return "\n".join(lines)
