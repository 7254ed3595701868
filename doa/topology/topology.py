"""Topologies: named streams with schemas, and named nodes wired by them.

A topology file declares its streams and nodes and exposes ``topology``; it holds no Kafka code.

Examples
--------
>>> t = Topology("demo", schemas=builtin_schema_dir())
>>> letters = t.stream("letters", schema="doa.DeadLetter", key="node", partitions=2)
>>> copies = t.stream("copies", schema="doa.DeadLetter", key="node")
>>> @t.node(reads=letters, writes=copies)
... def copy(state, batch):
...     return state, [(event, dict(event)) for event in batch]
>>> t.check()
>>> sorted(t.nodes), t.streams["letters"].partitions
(['copy'], 2)
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterable
from functools import cached_property
from pathlib import Path
from typing import Any

from doa.errors import SchemaError, TopologyError
from doa.node import Node, Step, Stream, state_factory, stream_names
from doa.wire.codec import Codec
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir

DEAD_LETTER_SCHEMA = "doa.DeadLetter"

__all__ = ["DEAD_LETTER_SCHEMA", "Node", "Stream", "Topology", "builtin_schema_dir"]


class Topology:
    """Streams and the nodes that read and write them.

    Parameters
    ----------
    name : the topology's name (consumer groups and state topics are named after it)
    dead_letters : the dead-letter stream's name (default ``NAME.dlq``)
    schemas : directory of ``.avsc`` files; relative paths resolve against the file that
        creates the topology; by default the nearest ``schemas/`` directory above that file
    """

    def __init__(self, name: str, *, dead_letters: str | None = None,
                 schemas: str | Path | None = None) -> None:
        self.name = name
        self.streams: dict[str, Stream] = {}
        self.nodes: dict[str, Node] = {}
        self._problems: list[str] = []
        self._codecs: dict[str, Codec] = {}
        caller = _caller_dir()
        self.folder = caller  # relative model paths resolve against it, like schemas=
        self.schema_dir = _resolve_schema_dir(schemas, caller)
        self.dead_letters = self.stream(dead_letters or f"{name}.dlq", schema=DEAD_LETTER_SCHEMA,
                                        key="node", shared=True)

    def __repr__(self) -> str:
        return f"Topology({self.name!r}, streams={len(self.streams)}, nodes={len(self.nodes)})"

    # -- declaration ---------------------------------------------------------------------------
    def stream(self, name: str, *, schema: str, key: str | None = None, partitions: int = 1,
               config: dict[str, str] | None = None, shared: bool = False,
               compatibility: str = "BACKWARD_TRANSITIVE") -> Stream:
        """Declare a stream and return it (parameters: see :class:`Stream`)."""
        level = compatibility.upper() if isinstance(compatibility, str) else compatibility
        s = Stream(name, schema, key, partitions, dict(config or {}), shared, level)
        if name in self.streams:
            self._problems.append(f"stream {name!r} is declared twice")
        self.streams[name] = s
        return s

    def node(self, *, reads: Stream | str | Iterable[Stream | str],
             writes: Stream | str | Iterable[Stream | str] = (),
             state: Any = None, name: str | None = None) -> Callable[[Step], Step]:
        """Decorator declaring a custom node; the function is its pure step."""
        def register(fn: Step) -> Step:
            self.add_node(Node(name or fn.__name__, stream_names(reads), stream_names(writes), fn,
                               state_factory(state)))
            return fn
        return register

    def kernel(self, name: str, *, reads: Stream | str | Iterable[Stream | str],
               writes: Stream | str, **options: Any) -> Node:
        """Declare a feature-kernel node (Numba); see :func:`doa.kernels.kernel_node`."""
        from doa.kernels import kernel_node

        return self.add_node(kernel_node(name, reads, writes, **options))

    def learner(self, name: str, **options: Any) -> Node:
        """Declare an online learner node (a River model): ``reads=Inputs(...)``,
        ``writes=Outputs(...)``, ``model=``, ``metric=`` and optional groups, or the same
        one keyword each; see :func:`doa.learner.node.learner_node`.
        """
        from doa.learner.node import learner_node

        return self.add_node(learner_node(name, **options))

    def detector(self, name: str, *, reads: Stream | str | Iterable[Stream | str],
                 writes: Stream | str, **options: Any) -> Node:
        """Declare a drift-detector node (River); see :func:`doa.detector.detector_node`."""
        from doa.detector import detector_node

        return self.add_node(detector_node(name, reads, writes, **options))

    def model(self, name: str, *, reads: Stream | str | Iterable[Stream | str],
              writes: Stream | str, model: Any, features: Iterable[str],
              **options: Any) -> Node:
        """Declare a node scoring batches with a pre-trained model (scikit-learn, ONNX,
        River frozen, ``predict_batch``); see :func:`doa.model.node.model_node`. A relative
        model path resolves against the topology file's folder, like ``schemas=``."""
        from doa.model.node import ARTIFACT_SCHEMA, model_node

        node = model_node(name, reads=reads, writes=writes, model=model,
                          features=list(features), **{"folder": self.folder, **options})
        versions = node.spec.versions  # type: ignore[attr-defined]
        if versions is not None and versions not in self.streams:  # NAME.versions by default
            first = self.streams.get(stream_names(reads)[0])
            self.stream(versions, schema=ARTIFACT_SCHEMA,
                        partitions=first.partitions if first else 1)
        return self.add_node(node)

    def join(self, name: str, *, left: Stream | str, right: Stream | str, on: str | tuple[str, str],
             within_ms: int, writes: Stream | str, **options: Any) -> Node:
        """Declare a keyed, windowed stream-stream join; see :func:`doa.join.join_node`."""
        from doa.join import join_node

        return self.add_node(join_node(name, left=left, right=right, on=on,
                                       within_ms=within_ms, writes=writes, **options))

    def add_node(self, node: Node) -> Node:
        """Add a ready-made node: any kind's (see :class:`doa.node.NodeKind`)."""
        if node.name in self.nodes:
            self._problems.append(f"node {node.name!r} is declared twice")
        self.nodes[node.name] = node
        return node

    def unchain(self, *names: str) -> None:
        """Make the nodes ``names`` read their inputs from the broker only, even when the node
        writing them runs in the same process (that node then hands its acknowledged outputs
        over in memory, :mod:`doa.engines.chain`; ``DOA_CHAIN=0`` unchains a whole run).

        >>> t = Topology("t")
        >>> @t.node(reads="a", writes="b")
        ... def copy(state, batch):
        ...     return state, [(e, e.value) for e in batch]
        >>> t.unchain("copy")
        >>> t.nodes["copy"].options["chain"]
        False
        """
        for name in names:
            if name not in self.nodes:
                raise TopologyError(self.name, [f"no node {name!r} to unchain (nodes: "
                                                f"{', '.join(self.nodes)})"])
            self.nodes[name].options["chain"] = False

    # -- derived -------------------------------------------------------------------------------
    @cached_property
    def schemas(self) -> SchemaSet:
        """Every schema of the topology's schema directory and doa's own."""
        dirs = [self.schema_dir] if self.schema_dir is not None else []
        return SchemaSet.load(*dirs)

    def codec(self, stream: str) -> Codec:
        """The codec of a declared stream."""
        codec = self._codecs.get(stream)
        if codec is None:
            if stream not in self.streams:
                raise KeyError(f"topology {self.name!r} declares no stream {stream!r}")
            spec = self.streams[stream]
            codec = self._codecs[stream] = Codec(stream, self.schemas[spec.schema])
        return codec

    def add_history(self, stream: str, versions: Iterable[Schema]) -> None:
        """Let ``stream``'s codec decode payloads written with older registered ``versions``."""
        current = self.codec(stream)
        self._codecs[stream] = Codec(stream, current.schema, [*current.history.values(),
                                                              *versions])

    def writers(self, stream: str) -> list[str]:
        """Names of the nodes that write ``stream``."""
        return [n.name for n in self.nodes.values() if stream in n.writes]

    def outputs(self, node: str) -> list[str]:
        """The streams node ``node`` may write: its own, then the dead-letter stream.

        >>> t = Topology("t")
        >>> _ = t.stream("a", schema="doa.Metric")
        >>> @t.node(reads="a", writes="a")
        ... def copy(state, batch):
        ...     return state, []
        >>> t.outputs("copy")
        ['a', 't.dlq']
        """
        return list(dict.fromkeys([*self.nodes[node].writes, self.dead_letters.name]))

    def readers(self, stream: str) -> list[str]:
        """Names of the nodes that read ``stream``."""
        return [n.name for n in self.nodes.values() if stream in n.reads]

    def order(self) -> list[Node]:
        """Nodes with each node after the nodes that write its inputs (cycles kept as found)."""
        done: list[Node] = []
        seen: set[str] = set()

        def visit(n: Node, path: set[str]) -> None:
            if n.name in seen or n.name in path:
                return
            for s in n.reads:
                for w in self.writers(s):
                    visit(self.nodes[w], path | {n.name})
            seen.add(n.name)
            done.append(n)

        for n in self.nodes.values():
            visit(n, set())
        return done

    # -- validation ----------------------------------------------------------------------------
    def validate(self) -> list[str]:
        """Return every wiring problem found; each names the node and stream involved."""
        from doa.topology.validate import problems

        return [*self._problems, *problems(self)]

    def check(self) -> None:
        """Raise :class:`TopologyError` listing every problem, or return None."""
        found = self.validate()
        if found:
            raise TopologyError(self.name, found)


def _caller_dir() -> Path | None:
    frame = inspect.currentframe()
    try:
        f = frame.f_back.f_back if frame and frame.f_back else None
        filename = f.f_code.co_filename if f else None
    finally:
        del frame
    if filename and not filename.startswith("<"):
        return Path(filename).resolve().parent
    return None


def _resolve_schema_dir(schemas: str | Path | None, caller: Path | None) -> Path | None:
    if schemas is not None:
        p = Path(schemas)
        if not p.is_absolute():
            p = (caller or Path.cwd()) / p
        if not p.is_dir():
            raise SchemaError(f"schema directory {str(p)!r} does not exist"
                              + _relative_hint(Path(schemas), caller))
        return p
    start = caller or Path.cwd()
    for d in [start, *start.parents][:4]:
        if (d / "schemas").is_dir() and d / "schemas" != builtin_schema_dir():
            return d / "schemas"
    return None



def _relative_hint(given: Path, caller: Path | None) -> str:
    """Why a relative ``schemas=`` missed, when the current folder has it: the path is the
    topology file's folder's (e.g. ``pipelines/iot.py`` needs ``"../schemas"``).

    >>> import os, tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     os.makedirs(f"{d}/schemas"); os.makedirs(f"{d}/pipelines"); old = os.getcwd()
    ...     os.chdir(d)
    ...     try:
    ...         print(_relative_hint(Path("schemas"), Path(d, "pipelines")))
    ...     finally:
    ...         os.chdir(old)
    ...
    ; a relative schemas= is read from the topology file's folder: schemas='../schemas'
    """
    if given.is_absolute() or caller is None or not (Path.cwd() / given).is_dir():
        return ""
    fixed = os.path.relpath(Path.cwd() / given, caller)
    return f"; a relative schemas= is read from the topology file's folder: schemas={fixed!r}"
