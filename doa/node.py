"""The leaf every node kind builds on: a stream's declaration, a node, its step's shape, and
the contract a kind of node fulfils (:class:`NodeKind`).

Nothing here imports the rest of doa, so node kinds (kernels, learners, detectors, your own)
and the topology that wires them all import from this one module.

Examples
--------
>>> s = Stream("readings", schema="reading", key="sensor_id", partitions=4)
>>> stream_names([s, "alerts"]), stream_name(s), stream_name(None)
(('readings', 'alerts'), 'readings', None)
>>> n = Node("copy", ("readings",), ("alerts",), lambda state, batch: (state, []), dict)
>>> n.kind, n.state(), n.spec.streams()
('node', {}, (('readings',), ('alerts',)))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Step = Callable[[Any, list[Any]], tuple[Any, Sequence[Any]]]

__all__ = ["Declared", "Node", "NodeKind", "Step", "Stream", "StreamInfo", "describe_callable",
           "missing_fields", "state_factory", "stream_name", "stream_names"]


@dataclass(frozen=True)
class Stream:
    """A typed Kafka topic.

    Parameters
    ----------
    name : the topic name
    schema : name of its Avro schema (full name, short name or ``.avsc`` file stem)
    key : the field whose value is the Kafka key (None: unkeyed)
    partitions : number of partitions (the unit of parallelism and of node state)
    config : topic configs, e.g. ``{"retention.ms": "86400000"}``
    shared : True if several nodes may write this stream
    compatibility : which schema changes registration accepts (Confluent's levels):
        ``BACKWARD_TRANSITIVE`` (default: the new schema reads every registered version),
        ``BACKWARD`` (the latest only), ``FORWARD``, ``FORWARD_TRANSITIVE``, ``FULL``,
        ``FULL_TRANSITIVE`` or ``NONE``
    """

    name: str
    schema: str
    key: str | None = None
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    shared: bool = False
    compatibility: str = "BACKWARD_TRANSITIVE"  # doa.wire.compat.DEFAULT_LEVEL


@dataclass(frozen=True)
class Node:
    """A named, pure step: ``step(state, batch) -> (state, outputs)``.

    ``batch`` is a list of :class:`doa.events.Event` from one input partition. Each output is
    ``(parent, record)`` for a node with one output stream, or ``(parent, stream, record)``;
    ``parent`` is the input event (or a list of them, the last one anchoring the id) the record
    was derived from. ``state`` makes a fresh state for each input partition.
    """

    name: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    step: Step
    state: Callable[[], Any]
    kind: str = "node"
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    spec: NodeKind = field(default=None, hash=False, compare=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.spec is None:  # a custom node, or one built the old way (kind + options)
            object.__setattr__(self, "spec", Declared(self.reads, self.writes, self.kind,
                                                      self.options.get("on_start")))

    @property
    def where(self) -> str:
        """``path/to/file.py:LINE`` of the step function, for error messages."""
        return describe_callable(self.step)

    def describe(self) -> dict[str, Any]:
        """What the live view and the catalog show: name, kind, streams, and the kind's own
        :meth:`NodeKind.describe` (plain, JSON-serialisable values)."""
        return {"name": self.name, "kind": self.kind, "reads": list(self.reads),
                "writes": list(self.writes), "step": self.where, **self.spec.describe()}


class StreamInfo(Protocol):
    """What a kind's :meth:`NodeKind.checks` may ask about the topology's streams.

    The topology's own (:class:`doa.topology.validate_nodes.TopologyStreams`) also answers
    ``partitioning(stream)``: the stream's key field and partition count, or None; a check
    that needs it asks ``getattr(streams, "partitioning", None)`` (a kind's test double may
    lack it).
    """

    def fields(self, stream: str) -> dict[str, Any] | None:
        """Field name → Avro type of ``stream``'s record schema; None: not known."""

    def schema(self, stream: str) -> str | None:
        """The full name of ``stream``'s schema; None: stream or schema not known."""


class NodeKind:
    """What a kind of node declares; a node's :attr:`Node.spec` is one.

    A kind of node (a kernel, a learner, a detector, yours: a join, a batch-trained model) is
    one module: a subclass of this class holding the kind's parameters, and a function
    building the :class:`Node` with :meth:`node`. Everything doa does with a node besides
    calling its step goes through these members, and nothing reads the node's ``options``:

    ``kind``
        the kind's name (class attribute), shown as :attr:`Node.kind`;
    :meth:`streams`
        the streams a node of this kind reads and writes (names), which become the node's
        ``reads`` and ``writes``;
    :meth:`checks`
        called by ``doa check`` / :meth:`doa.topology.Topology.validate` once the streams and
        schemas are known: one line per problem (fields missing from a schema, a stream with
        the wrong schema), naming the kind, node, stream and field;
    :meth:`start`
        called once by the runtime before a node's first batch (compile Numba kernels, load
        an artefact); it must not touch the node's state;
    :meth:`describe`
        what the live view and the catalog show (model, features, detector, streams by
        role under ``"streams"``): plain values that ``json.dumps`` accepts;
    :meth:`commands`
        the streams a node of this kind obeys (a model node's versions, a learner's control),
        by role: another topology's node reading one would obey the same commands.

    Examples
    --------
    A kind whose nodes pass records on unchanged (a real kind also builds its step here):

    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Copy(NodeKind):
    ...     kind = "copy"
    ...     source: str
    ...     target: str
    ...     def streams(self):
    ...         return (self.source,), (self.target,)
    ...     def checks(self, node, streams):
    ...         return missing_fields(node, streams, self.source, ["id"], "copied")
    ...     def describe(self):
    ...         return {"streams": {"source": self.source, "target": self.target}}
    >>> node = Copy("a", "b").node("copier", lambda state, batch: (state, list(batch)))
    >>> node.kind, node.reads, node.writes, node.describe()["streams"]
    ('copy', ('a',), ('b',), {'source': 'a', 'target': 'b'})
    """

    kind: str = "node"

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """``(reads, writes)``: the names of the streams a node of this kind reads, writes."""
        raise NotImplementedError(f"{type(self).__name__}.streams()")

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """Problems of ``node`` against the topology's declared ``streams``; none by default."""
        return []

    def start(self) -> None:
        """Prepare to run (e.g. compile); called once per node before its first batch."""

    def describe(self) -> dict[str, Any]:
        """What the live view and the catalog show about the node (JSON-serialisable)."""
        return {}

    def commands(self) -> dict[str, str]:
        """The streams a node of this kind takes commands from, by name: their role."""
        return {}

    def node(self, name: str, step: Step, state: Any = None,
             options: dict[str, Any] | None = None) -> Node:
        """A :class:`Node` of this kind running ``step`` from ``state`` (a value or a factory,
        see :func:`state_factory`)."""
        reads, writes = self.streams()
        return Node(name, reads, writes, step, state_factory(state), kind=self.kind,
                    options=dict(options or {}), spec=self)


@dataclass(frozen=True)
class Declared(NodeKind):
    """The kind of a custom node (``@topology.node``): its streams are what it declares.

    ``on_start`` is the start hook of a node built the old way, with
    ``options={"on_start": fn}``.
    """

    reads: tuple[str, ...]
    writes: tuple[str, ...]
    kind: str = "node"
    on_start: Callable[[], Any] | None = None

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.reads, self.writes

    def start(self) -> None:
        if self.on_start is not None:
            self.on_start()


NUMBERS = "int, long, float, double, boolean or decimal, optionally null"


def is_number(avro: Any) -> bool:
    """An Avro type whose values a kernel or a model reads as numbers (see :data:`NUMBERS`;
    a date or a time decodes as a ``datetime``, not a number).

    >>> [is_number(t) for t in ("long", ["null", "double"], "boolean", {"type": "bytes",
    ...  "logicalType": "decimal"}, {"type": "long", "logicalType": "timestamp-millis"},
    ...  "string", ["null", "string"], ["long", "string"], "null")]
    [True, True, True, True, False, False, False, False, False]
    """
    if isinstance(avro, list):
        real = [t for t in avro if t != "null"]
        return bool(real) and all(is_number(t) for t in real)
    if isinstance(avro, dict):
        logical = avro.get("logicalType")
        return logical == "decimal" or (logical is None and is_number(avro.get("type")))
    return avro in ("int", "long", "float", "double", "boolean")


def shown_type(avro: Any) -> str:
    """An Avro type as a message shows it: ``string``, ``null | string``, ``long (date)``.

    >>> shown_type(["null", {"type": "long", "logicalType": "timestamp-millis"}])
    'null | long (timestamp-millis)'
    """
    if isinstance(avro, list):
        return " | ".join(shown_type(t) for t in avro)
    if isinstance(avro, dict):
        logical, kind = avro.get("logicalType"), str(avro.get("type"))
        return f"{kind} ({logical})" if logical else str(avro.get("name") or kind)
    return str(avro)


def missing_fields(node: Node, streams: StreamInfo, stream: str, names: Iterable[str],
                   role: str) -> list[str]:
    """One problem per name in ``names`` that is not a field of ``stream`` (none if its fields
    are not known): the helper most kinds' :meth:`NodeKind.checks` need.

    Examples
    --------
    >>> class Known:
    ...     def fields(self, stream): return {"id": "long"}
    ...     def schema(self, stream): return "demo.Item"
    >>> n = Node("n", ("items",), (), lambda s, b: (s, []), dict, kind="demo")
    >>> missing_fields(n, Known(), "items", ["id", "size"], "input")
    ["demo 'n': input field 'size' is not a field of stream 'items' (demo.Item: id)"]
    """
    fields = streams.fields(stream)
    if fields is None:
        return []
    return [f"{node.kind} {node.name!r}: {role} field {name!r} is not a field of stream "
            f"{stream!r} ({streams.schema(stream)}: {', '.join(fields)})"
            for name in names if name not in fields]


def describe_callable(fn: Callable[..., Any]) -> str:
    """Where ``fn`` is defined: ``file.py:LINE`` for user code (the path relative to the
    working directory when it is inside it), ``module.qualname:LINE`` for doa's own steps.

    Examples
    --------
    >>> describe_callable(state_factory).startswith("doa.node.state_factory:")
    True
    >>> describe_callable(len)
    'builtins.len'
    """
    code = getattr(fn, "__code__", None)
    module = getattr(fn, "__module__", None) or "?"
    filename = getattr(code, "co_filename", "<unknown>")
    line = f":{code.co_firstlineno}" if code is not None else ""
    if code is not None and not module.startswith("doa.") and not filename.startswith("<"):
        return f"{_shown_path(filename)}{line}"
    name = getattr(fn, "__qualname__", repr(fn))
    return f"{module}.{name}{line}"


def _shown_path(filename: str) -> str:
    path = Path(filename)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (OSError, ValueError):  # outside the working directory
        return str(path)


def state_factory(state: Any) -> Callable[[], Any]:
    """Turn a ``state=`` argument into a factory: callables are called, values deep-copied."""
    if state is None:
        return dict
    if callable(state):
        return state  # type: ignore[no-any-return]
    return lambda: copy.deepcopy(state)


def stream_names(items: Stream | str | Iterable[Stream | str]) -> tuple[str, ...]:
    """The names of one stream or several (declarations or names)."""
    if isinstance(items, (Stream, str)):
        items = [items]
    return tuple(i.name if isinstance(i, Stream) else str(i) for i in items)


def stream_name(item: Stream | str | None) -> str | None:
    """The name of a stream given as a declaration or a name; None stays None."""
    return item.name if isinstance(item, Stream) else item
