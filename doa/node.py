"""The leaf every node kind builds on: a stream's declaration, a node, its step's shape.

Nothing here imports the rest of doa, so node kinds (kernels, learners, detectors, your own)
and the topology that wires them all import from this one module.

Examples
--------
>>> s = Stream("readings", schema="reading", key="sensor_id", partitions=4)
>>> stream_names([s, "alerts"]), stream_name(s), stream_name(None)
(('readings', 'alerts'), 'readings', None)
>>> n = Node("copy", ("readings",), ("alerts",), lambda state, batch: (state, []), dict)
>>> n.kind, n.state()
('node', {})
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Step = Callable[[Any, list[Any]], tuple[Any, Sequence[Any]]]

__all__ = ["Node", "Step", "Stream", "describe_callable", "state_factory", "stream_name",
           "stream_names"]


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

    @property
    def where(self) -> str:
        """``path/to/file.py:LINE`` of the step function, for error messages."""
        return describe_callable(self.step)


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
