"""Offline validation of a topology: every problem at once, each naming node and stream.

Examples
--------
>>> from doa.topology.topology import Topology
>>> from doa.wire.schema import builtin_schema_dir
>>> t = Topology("demo", schemas=builtin_schema_dir())
>>> @t.node(reads="nowhere")
... def lost(state, batch):
...     return state, []
>>> problems(t)
["node 'lost' reads stream 'nowhere', which is not declared"]
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from doa.errors import DoaError
from doa.topology.labelled import labelled_problems
from doa.topology.validate_nodes import TopologyStreams, node_problems, undeclared_mentions
from doa.wire.compat import LEVELS
from doa.wire.explain import describe

if TYPE_CHECKING:
    from doa.node import Node, Stream
    from doa.topology.topology import Topology
    from doa.wire.schema import SchemaSet

# Kafka's rule (kafka.common.internals.Topic): 1-249 of [A-Za-z0-9._-], not "." or "..".
# fullmatch, not match with "$": "$" also matches before a trailing newline.
_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def valid_name(name: object) -> bool:
    """True if ``name`` is a valid Kafka topic name (and so a valid node name).

    Examples
    --------
    >>> valid_name("sensors.dlq"), valid_name(".."), valid_name("a\\n"), valid_name("x" * 250)
    (True, False, False, False)
    """
    return isinstance(name, str) and bool(_NAME.fullmatch(name)) and name not in (".", "..")


def problems(t: Topology) -> list[str]:
    """Every wiring problem of ``t``."""
    out: list[str] = []
    schemas: SchemaSet | None
    try:
        schemas = t.schemas
    except DoaError as exc:  # report it, and still check the wiring
        out.append(f"schemas of topology {t.name!r}: {exc}")
        schemas = None
    for s in t.streams.values():
        out.extend(_stream_problems(t, s, schemas))
    for n in t.nodes.values():
        if not valid_name(n.name):
            out.append(f"node {n.name!r}: not a valid name (letters, digits, '.', '_', '-'; "
                       "it names the node's consumer group and state topic)")
        if not n.reads:
            out.append(f"node {n.name!r} reads no stream")
        for name in dict.fromkeys(n.reads):
            if name not in t.streams:
                out.append(f"node {n.name!r} reads stream {name!r}, which is not declared")
            if n.reads.count(name) > 1:
                out.append(f"node {n.name!r} reads stream {name!r} more than once")
        for name in dict.fromkeys(n.writes):
            if name not in t.streams:
                out.append(f"node {n.name!r} writes stream {name!r}, which is not declared")
        out.extend(_count_problems(n, {x: t.streams[x].partitions for x in n.reads
                                       if x in t.streams}))
        if schemas is not None:
            out.extend(node_problems(t, n))
            out.extend(labelled_problems(n, TopologyStreams(t)))
    for s in t.streams.values():
        writers = t.writers(s.name)
        if len(writers) > 1 and not s.shared:
            names = " and ".join(repr(w) for w in writers)
            out.append(f"stream {s.name!r} is written by nodes {names}; declare it with "
                       "shared=True if that is intended")
    return out


def warnings(t: Topology) -> list[str]:
    """What looks wrong in ``t`` but may be intended: a custom node's step that mentions a
    stream of the topology it does not declare (one line each; see
    :func:`doa.topology.validate_nodes.undeclared_mentions` for what counts as a mention).

    Examples
    --------
    >>> from doa.topology.topology import Topology
    >>> warnings(Topology("empty"))
    []
    """
    out: list[str] = []
    for n in t.nodes.values():
        out += [f"node {n.name!r} ({n.where}) mentions stream {s!r}, which it does not declare "
                "in reads or writes: emitting to it fails at run time"
                for s in undeclared_mentions(t, n)]
    return out


def _count_problems(n: Node, parts: dict[str, int]) -> list[str]:
    """``n``'s inputs of different partition counts, with the fix: the largest count for all
    (a topic's partitions can be added, never removed).

    Examples
    --------
    >>> from doa.join import join_node
    >>> node = join_node("assess", left="claims", right="policies", on="policy_id",
    ...                  within_ms=100, writes="assessed")
    >>> print(*_count_problems(node, {"claims": 2, "policies": 4}))
    ... # doctest: +NORMALIZE_WHITESPACE
    node 'assess' reads streams with different partition counts (claims: 2, policies: 4);
    co-partitioned inputs must have equal counts: records with equal keys land on different
    partitions and never meet; declare 'claims' with partitions=4
    """
    counts = [p for p in parts.values() if type(p) is int]
    if len(set(counts)) <= 1:
        return []
    listed = ", ".join(f"{s}: {p}" for s, p in parts.items())
    most = max(counts)
    fewer = " and ".join(repr(s) for s, p in parts.items() if p != most)
    return [f"node {n.name!r} reads streams with different partition counts ({listed}); "
            "co-partitioned inputs must have equal counts: records with equal keys land on "
            f"different partitions and never meet; declare {fewer} with partitions={most}"]


def _stream_problems(t: Topology, s: Stream, schemas: SchemaSet | None) -> list[str]:
    out: list[str] = []
    if not valid_name(s.name):
        out.append(f"stream {s.name!r}: not a valid Kafka topic name "
                   "(1-249 characters of letters, digits, '.', '_', '-'; not '.' or '..')")
    if type(s.partitions) is not int or s.partitions < 1:
        out.append(f"stream {s.name!r}: partitions must be a positive int, got {s.partitions!r}")
    if s.compatibility not in LEVELS:
        out.append(f"stream {s.name!r}: unknown compatibility level {s.compatibility!r} "
                   f"(use one of {', '.join(LEVELS)})")
    if schemas is None:
        return out
    schema = schemas.get(s.schema)
    if schema is None:
        out.append(f"stream {s.name!r}: schema {s.schema!r} not found in "
                   f"{t.schema_dir or 'doa built-ins'}")
        return out
    fields = _fields(schema.json)
    if fields is None:
        out.append(f"stream {s.name!r}: schema {schema.fullname} is {describe(schema.json)}; "
                   "a stream's schema must be a record")
    elif s.key is not None and s.key not in fields:
        out.append(f"stream {s.name!r}: key field {s.key!r} is not a field of "
                   f"{schema.fullname} (fields: {', '.join(fields)})")
    return out


def _fields(schema: object) -> list[str] | None:
    if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
        return [f["name"] for f in schema["fields"]]
    return None
