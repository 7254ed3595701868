"""Offline checks of nodes: each kind's own checks, and a look at custom nodes' steps.

Each node's kind checks what it declared against the streams' schemas (see
:meth:`doa.node.NodeKind.checks`): a learner's join field must be in both its features and
labels, a kernel node's feature fields in its output schema with their types, a detector's
signal in what it reads. Mistakes are reported at ``doa check`` instead of as dead letters at
run time.

A custom node's step is looked at too, statically: a stream of the topology that its source
names (as a string literal, or as a ``Stream`` it refers to) but that it does not declare in
``reads``/``writes`` is a warning, since writing to it fails at run time.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from types import CodeType
from typing import TYPE_CHECKING, Any

from doa.node import Declared

if TYPE_CHECKING:
    from doa.node import Node
    from doa.topology.topology import Topology


class TopologyStreams:
    """The :class:`doa.node.StreamInfo` of a topology: its streams' fields and schema names.

    Examples
    --------
    >>> from doa.topology.topology import Topology
    >>> t = Topology("demo")
    >>> _ = t.stream("letters", schema="doa.DeadLetter")
    >>> info = TopologyStreams(t)
    >>> info.schema("letters"), "offset" in info.fields("letters"), info.fields("nowhere")
    ('doa.DeadLetter', True, None)
    >>> info.partitioning("letters"), info.partitioning("nowhere")
    ((None, 1), None)
    """

    def __init__(self, topology: Topology) -> None:
        self.topology = topology

    def fields(self, stream: str) -> dict[str, Any] | None:
        return fields_of(self.topology, stream)

    def schema(self, stream: str) -> str | None:
        spec = self.topology.streams.get(stream)
        schema = self.topology.schemas.get(spec.schema) if spec is not None else None
        return schema.fullname if schema is not None else None

    def partitioning(self, stream: str) -> tuple[str | None, int] | None:
        """``stream``'s key field (None: unkeyed) and partition count; None: not declared."""
        spec = self.topology.streams.get(stream)
        return None if spec is None else (spec.key, spec.partitions)


def fields_of(t: Topology, stream: str) -> dict[str, Any] | None:
    """Field name to Avro type of a declared stream's record schema (None if unknown)."""
    spec = t.streams.get(stream)
    if spec is None:
        return None
    schema = t.schemas.get(spec.schema)
    if schema is None or not isinstance(schema.json, dict) or "fields" not in schema.json:
        return None
    return {f["name"]: f["type"] for f in schema.json["fields"]}


def node_problems(t: Topology, n: Node) -> list[str]:
    """What ``n``'s kind finds wrong with it in ``t`` (:meth:`doa.node.NodeKind.checks`)."""
    return list(n.spec.checks(n, TopologyStreams(t)))


def undeclared_mentions(t: Topology, n: Node) -> list[str]:
    """Streams of ``t`` that custom node ``n``'s step mentions without declaring them.

    Examples
    --------
    >>> from doa.topology.topology import Topology
    >>> t = Topology("demo")
    >>> letters = t.stream("letters", schema="doa.DeadLetter")
    >>> @t.node(reads=letters)
    ... def sneaky(state, batch):
    ...     return state, [(e, "demo.dlq", dict(e)) for e in batch]
    >>> undeclared_mentions(t, t.nodes["sneaky"])
    ['demo.dlq']
    """
    if not isinstance(n.spec, Declared):  # a ready-made kind: its step is doa's
        return []
    declared = {*n.reads, *n.writes}
    mentioned = _literals(n.step) | _referenced_streams(n.step)
    return [s for s in t.streams if s in mentioned and s not in declared]


def _literals(fn: Any) -> set[str]:
    """The string constants in ``fn``'s source, its decorators left out (empty if unknown)."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):  # no source (built in, REPL), or a lambda's line
        return set()
    for top in tree.body:
        if isinstance(top, (ast.FunctionDef, ast.AsyncFunctionDef)):
            top.decorator_list = []
    if getattr(fn, "__name__", "") == "<lambda>":  # its source is the whole statement
        roots: list[ast.AST] = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    else:
        roots = [tree]
    return {c.value for root in roots for c in ast.walk(root)
            if isinstance(c, ast.Constant) and isinstance(c.value, str)}


def _referenced_streams(fn: Any) -> set[str]:
    """Names of the ``Stream`` objects ``fn`` (or a comprehension in it) refers to as globals
    or closure variables."""
    from doa.node import Stream

    code = getattr(fn, "__code__", None)
    if code is None:
        return set()
    names: set[str] = set()
    stack = [code]
    while stack:  # inspect.getclosurevars skips the code of nested comprehensions
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if isinstance(k, CodeType))
    namespace = getattr(fn, "__globals__", {})
    values = [namespace[n] for n in names if n in namespace]
    for cell in getattr(fn, "__closure__", None) or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # a cell not filled yet
            continue
    return {v.name for v in values if isinstance(v, Stream)}
