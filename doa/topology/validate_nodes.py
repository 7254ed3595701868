"""Offline checks of the ready-made node kinds: the fields they use exist, with the right schemas.

A learner's join field must be in both its features and labels, its label in the labels, its
feature fields in the features, and each stream it writes must have doa's schema for it; a
kernel node's feature fields must be in its output schema with their types; a detector's
signal must be a field of what it reads. Mistakes are reported at ``doa check`` instead of as
dead letters at run time.

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

if TYPE_CHECKING:
    from doa.node import Node
    from doa.topology.topology import Topology

LEARNER_SCHEMAS = {"predictions": "doa.Prediction", "outcomes": "doa.Outcome",
                   "metrics": "doa.Metric", "unmatched": "doa.UnmatchedLabel",
                   "models": "doa.ModelEvent", "control": "doa.ModelCommand",
                   "drift": "doa.DriftEvent"}


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
    if n.kind == "learner":
        return _learner(t, n)
    if n.kind == "kernel":
        return _kernel(t, n)
    if n.kind == "detector":
        return _detector(t, n)
    return []


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
    if n.kind != "node":
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


def _missing(t: Topology, n: Node, stream: str, names: list[str], role: str) -> list[str]:
    fields = fields_of(t, stream)
    if fields is None:
        return []
    return [f"{n.kind} {n.name!r}: {role} field {name!r} is not a field of stream {stream!r} "
            f"({t.streams[stream].schema}: {', '.join(fields)})"
            for name in names if name not in fields]


def _learner(t: Topology, n: Node) -> list[str]:
    spec = n.options["spec"]
    out = [*_missing(t, n, spec.features, [spec.join], "join"),
           *_missing(t, n, spec.labels, [spec.join], "join"),
           *_missing(t, n, spec.labels, [spec.label], "label"),
           *_missing(t, n, spec.features, list(spec.feature_fields or ()), "feature")]
    for role, expected in LEARNER_SCHEMAS.items():
        stream = getattr(spec, role)
        if stream is None or stream not in t.streams:
            continue
        declared = t.schemas.get(t.streams[stream].schema)
        if declared is not None and declared.fullname != expected:
            out.append(f"learner {n.name!r}: its {role} stream {stream!r} must have schema "
                       f"{expected}, not {declared.fullname}")
    return out


def _kernel(t: Topology, n: Node) -> list[str]:
    out: list[str] = []
    for stream in n.writes:
        fields = fields_of(t, stream)
        if fields is None:
            continue
        for group in n.options.get("fields", {}).values():
            for name, kind in group:
                if name not in fields:
                    out.append(f"kernel {n.name!r}: output field {name!r} ({kind}) is not a "
                               f"field of stream {stream!r} ({t.streams[stream].schema})")
                elif not _accepts(fields[name], kind):
                    out.append(f"kernel {n.name!r}: output field {name!r} of stream {stream!r} "
                               f"is {fields[name]}, the kernel writes {kind}")
    for stream in n.reads:
        out += _missing(t, n, stream, list(n.options.get("input_fields") or ()), "input")
    return out


def _detector(t: Topology, n: Node) -> list[str]:
    out: list[str] = []
    for stream in n.reads:
        out += _missing(t, n, stream, [n.options["signal"]], "signal")
    for stream in n.writes:
        declared = t.schemas.get(t.streams[stream].schema) if stream in t.streams else None
        if declared is not None and declared.fullname != "doa.DriftEvent":
            out.append(f"detector {n.name!r}: it writes doa.DriftEvent records, stream "
                       f"{stream!r} has schema {declared.fullname}")
    return out


def _accepts(avro_type: Any, kind: str) -> bool:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    allowed = {"double": {"double"}, "long": {"long", "double"}}[kind]
    return any(b in allowed for b in branches)
