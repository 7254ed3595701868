"""The engine-independent core: raw records in, step called, encoded records out.

:class:`NodeRunner` does for one node what every engine (the in-memory harness, the kafka
engine, the faust engine) needs: decode a batch from one input partition, call the pure step,
validate and encode what it returns, attach lineage headers, and turn every failure into a
dead letter instead of an exception. A step that raises on a batch is retried from the state
as it was before the batch (:mod:`doa.runtime.isolate`), so only the guilty records are
dead-lettered and the state reflects every other record exactly once.

Each output's lineage header (version 2, :func:`doa.events.pack_output_lineage`) names its
parents by id and by coordinates, and the model version that made it: the one a step gives
with :class:`doa.events.Out`, else the record's ``model_version`` field when its schema has
one, else 0.

A record written with a schema version registered after the node started (a compatible
change deployed while it runs) is not a dead letter: on its unknown fingerprint the runner asks
:attr:`NodeRunner.reread` (an engine's: the broker's registry, read again at most every
:data:`REREAD_S` seconds per stream; it blocks the node for that read) for the stream's codec
with every version registered now, and decodes with it.

A record ``doa dlq --replay`` re-published for one node (its ``doa.replay`` header names the
node whose dead letter it was: :func:`doa.events.replay_node`) is processed by that node
only; every other node reading the stream skips it, counted in :attr:`BatchResult.skipped`
(it got the original already). A header that names no node (written before doa named it) is
for every reader.

Examples
--------
>>> from doa.topology.topology import Topology
>>> from doa.wire.schema import builtin_schema_dir
>>> t = Topology("demo", schemas=builtin_schema_dir())
>>> src = t.stream("src", schema="doa.DeadLetter", key="node")
>>> dst = t.stream("dst", schema="doa.DeadLetter", key="node")
>>> @t.node(reads=src, writes=dst, state=lambda: 0)
... def count(state, batch):
...     return state + len(batch), [(e, dict(e)) for e in batch]
>>> runner = NodeRunner(t, t.nodes["count"], clock=lambda: 0)
>>> ok = t.codec("src").encode(dict(stream="s", partition=0, offset=0, node="n",
...     error_type="", message="", raw=b"", timestamp=0))
>>> result = runner.process(0, [RawRecord("src", 0, 0, 0, None, ok, ()),
...                             RawRecord("src", 0, 1, 0, None, b"junk", ())])
>>> result.state, [o.stream for o in result.outputs]
(1, ['demo.dlq', 'dst'])
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from doa.errors import DoaError, EncodeError, StepError
from doa.events import (
    LINEAGE_HEADER,
    Coordinates,
    Event,
    Lineage,
    Out,
    OutputIds,
    header_id,
    key_bytes,
    lineage_of,
    make_event,
    output_id,
    pack_lineage,
    pack_output_lineage,
    partition_for,
    replay_fields,
    replay_node,
)
from doa.node import Node
from doa.runtime.isolate import isolate
from doa.runtime.tell import LetterLines
from doa.topology.topology import Topology
from doa.wire.codec import Codec

Headers = Sequence[tuple[str, bytes]]
REREAD_S = 30.0  # a stream's registry is read again at most this often (unknown fingerprints)


class RawRecord(NamedTuple):
    """A record as read from a partition, before decoding (a named tuple: ~4x cheaper to
    make than a frozen dataclass, and the engines make one per record)."""

    stream: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()


class OutRecord(NamedTuple):
    """A record ready to produce: encoded, partitioned, with headers."""

    stream: str
    partition: int
    key: bytes | None
    value: bytes
    timestamp: int
    headers: Headers
    id: bytes = b""


@dataclass
class BatchResult:
    """What one call of :meth:`NodeRunner.process` produced."""

    state: Any
    outputs: list[OutRecord] = field(default_factory=list)
    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    skipped: int = 0  # replays for another node (in records_in, not processed)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class NodeRunner:
    """Run one node's step on raw records; see the module docstring."""

    def __init__(self, topology: Topology, node: Node,
                 clock: Callable[[], int] = wall_clock_ms) -> None:
        self.topology = topology
        self.node = node
        self.clock = clock
        self._in = {s: topology.codec(s) for s in node.reads}
        self._out = {s: topology.codec(s) for s in node.writes}
        self._streams = topology.streams
        self._dlq = topology.codec(topology.dead_letters.name)
        self._single = node.writes[0] if len(node.writes) == 1 else None
        self._node_name = node.name.encode()
        # output streams whose records name the model version that made them
        self._versioned = {s for s, c in self._out.items() if _has_model_version(c.schema.json)}
        self._partitions: dict[tuple[str, bytes], int] = {}  # murmur2 is slow in Python
        self._ids = OutputIds(node.name)
        self.letters = LetterLines(node.name)
        # engines with a broker: a stream's codec with every version registered now, or None
        self.reread: Callable[[str], Codec | None] | None = None
        self._reread_at: dict[str, float] = {}

    # -- public --------------------------------------------------------------------------------
    def start(self) -> float:
        """Run the node kind's start hook once (:meth:`doa.node.NodeKind.start`: kernel nodes
        compile there); return the seconds it took."""
        began = time.perf_counter()
        self.node.spec.start()
        return time.perf_counter() - began

    def process(self, state: Any, records: Sequence[RawRecord]) -> BatchResult:
        """Process ``records`` (one input partition, in offset order) from ``state``."""
        result = BatchResult(state, records_in=len(records))
        events: list[Event] = []
        raws: list[RawRecord] = []
        for raw in records:
            event = self._decode(raw, result)
            if event is not None:
                events.append(event)
                raws.append(raw)
        if not events:
            return result
        checkpoint = self._checkpoint(state)
        try:
            new_state, outs = self._call(state, events)
        except Exception:  # only the guilty die (doa.runtime.isolate)
            def took(outs: list[OutRecord]) -> None:
                result.outputs.extend(outs)
                result.records_out += len(outs)
            result.state = isolate(
                pickle.loads(checkpoint), events, self._call, self._checkpoint, took,
                lambda i, exc: self._dead(result, raws[i], type(exc).__name__, _message(exc)))
            return result
        result.state = new_state
        result.outputs.extend(outs)
        result.records_out += len(outs)
        return result

    # -- internals -----------------------------------------------------------------------------
    def _checkpoint(self, state: Any) -> bytes:
        try:
            return pickle.dumps(state, protocol=5)
        except Exception as exc:
            raise StepError(f"node {self.node.name!r}: its state must be picklable (it is "
                            f"snapshotted to the state topic): {type(exc).__name__}: {exc}"
                            ) from exc

    def _decode(self, raw: RawRecord, result: BatchResult) -> Event | None:
        if raw.headers:  # a replay for another node is not this node's (doa.dlq)
            to = replay_node(raw.headers)
            if to is not None and to != self._node_name:
                result.skipped += 1
                return None
        codec = self._in[raw.stream]
        try:
            if raw.value is None:
                raise DoaError(f"stream {raw.stream!r}: record has no value (a tombstone)")
            record = codec.decode(raw.value)
            event_id = header_id(raw.headers)
        except Exception as exc:
            reason = getattr(exc, "reason", None)
            if reason == "unknown-fingerprint" and self._reread(raw.stream):
                return self._decode(raw, result)  # with the versions registered now
            kind = type(exc).__name__ + (f"/{reason}" if reason else "")
            self._dead(result, raw, kind, _message(exc))
            return None
        return make_event(record, raw.stream, raw.partition, raw.offset, raw.timestamp, raw.key,
                          event_id)

    def _reread(self, stream: str) -> bool:
        """Whether ``stream``'s codec was read again from the registry (not within
        :data:`REREAD_S` of the last time)."""
        now = time.monotonic()
        if self.reread is None or now - self._reread_at.get(stream, -REREAD_S) < REREAD_S:
            return False
        self._reread_at[stream] = now
        codec = self.reread(stream)
        if codec is None:
            return False
        self._in[stream] = codec
        return True

    def _call(self, state: Any, events: list[Event]) -> tuple[Any, list[OutRecord]]:
        returned = self.node.step(state, events)
        if not _is_pair(returned):
            raise StepError(f"node {self.node.name!r} ({self.node.where}) must return "
                            f"(state, outputs), got {type(returned).__name__}")
        new_state, outputs = returned
        if not isinstance(outputs, (list, tuple)):
            raise StepError(f"node {self.node.name!r} ({self.node.where}) returned outputs of "
                            f"type {type(outputs).__name__}; return (state, [outputs...])")
        return new_state, self._encode_all(outputs, events)

    def _encode_all(self, outputs: Sequence[Any], batch: list[Event]) -> list[OutRecord]:
        encoded: list[OutRecord] = []
        counts: dict[bytes, int] = {}
        in_batch = {id(e) for e in batch}
        partitions = self._partitions
        versioned = self._versioned
        single = self._single
        out = self._out
        for item in outputs:
            if (item.__class__ is tuple and len(item) == 2 and single is not None
                    and item[0].__class__ is Event and isinstance(item[1], dict)):
                # (parent, record) for the one output stream: the common case, checked here
                anchor, record = item
                parents: list[Event] = [anchor]
                stream, model_version = single, None
            elif (item.__class__ is tuple and len(item) == 3 and item[0].__class__ is Event
                  and item[1].__class__ is str and item[1] in out
                  and isinstance(item[2], dict)):
                # (parent, stream name, record): a node writing several streams (a learner)
                anchor, stream, record = item
                parents = [anchor]
                model_version = None
            else:
                parents, stream, record, model_version = self._unpack(item)
                anchor = parents[-1]
            if id(anchor) not in in_batch:
                raise StepError(
                    f"node {self.node.name!r} ({self.node.where}): an output's parent (the last "
                    "one, if several) must be an event of the current batch; its id is derived "
                    "from that event, so a replay writes the same id")
            index = counts.get(anchor.id, 0)
            counts[anchor.id] = index + 1
            out_id = self._ids(anchor, index)
            codec = self._out[stream]
            spec = self._streams[stream]
            try:
                value = codec.encode(record)
            except EncodeError as exc:
                raise EncodeError(exc.stream, exc.path, exc.expected, exc.value,
                                  detail=f"emitted by node {self.node.name!r} "
                                         f"({self.node.where})") from exc
            key = key_bytes(record.get(spec.key)) if spec.key else None
            if key is None:
                partition = anchor.partition % spec.partitions
            else:
                partition = partitions.get((stream, key), -1)
                if partition < 0:
                    partition = partitions[(stream, key)] = partition_for(key, spec.partitions)
                    if len(partitions) > 100_000:
                        partitions.clear()
            if model_version is None:
                model_version = record.get("model_version") or 0 if stream in versioned else 0
            # Event time: the latest parent's timestamp, never the wall clock (DESIGN 8).
            timestamp = anchor.timestamp if len(parents) == 1 else \
                max(p.timestamp for p in parents)
            header = pack_output_lineage(out_id, self._node_name, codec.schema.fingerprint,
                                         parents, model_version)
            encoded.append(OutRecord(
                stream, partition, key, value, timestamp,
                ((LINEAGE_HEADER, header),), out_id,
            ))
        return encoded

    def _unpack(self, item: Any) -> tuple[list[Event], str, dict[str, Any], int | None]:
        node = self.node
        model_version: int | None = None
        parent: Any
        if isinstance(item, Out):
            parent, record, target, model_version = item
            if target is None and self._single is None:
                raise StepError(f"node {node.name!r} ({node.where}) writes several streams: "
                                "its Out(...) outputs must name the stream")
            stream = self._single if target is None else str(getattr(target, "name", target))
            if not isinstance(model_version, int) or model_version < 0:
                raise StepError(f"node {node.name!r} ({node.where}): Out(...).model_version "
                                f"must be an int >= 0, got {model_version!r}")
        elif isinstance(item, tuple) and len(item) == 2 and self._single is not None:
            parent, record = item
            stream = self._single
        elif isinstance(item, tuple) and len(item) == 3:
            parent, target, record = item
            stream = str(getattr(target, "name", target))
        else:
            shape = "(parent, record)" if self._single else "(parent, stream, record)"
            to = f" for stream {self._single!r}" if self._single else ""
            raise StepError(f"node {node.name!r} ({node.where}) returned an output "
                            f"{type(item).__name__}{to}; each output must be {shape}")
        parents = list(parent) if isinstance(parent, (list, tuple)) else [parent]
        if not parents or not all(isinstance(p, Event) for p in parents):
            raise StepError(f"node {node.name!r} ({node.where}): an output's parent must be "
                            "an input event (or a list of them)")
        if stream not in self._out:
            raise StepError(f"node {node.name!r} ({node.where}) emitted to stream {stream!r}, "
                            f"which it does not declare in writes={list(node.writes)}")
        if not isinstance(record, dict):
            raise StepError(f"node {node.name!r} ({node.where}) emitted a "
                            f"{type(record).__name__} to stream {stream!r}; records are dicts")
        return parents, stream, record, model_version

    def _dead(self, result: BatchResult, raw: RawRecord, kind: str, message: str) -> None:
        now = self.clock()
        envelope: dict[str, Any] = {
            "stream": raw.stream, "partition": raw.partition, "offset": raw.offset,
            "node": self.node.name, "error_type": kind, "message": message,
            "key": raw.key, "raw": raw.value or b"", "timestamp": now,
            "record_timestamp": raw.timestamp, "tombstone": raw.value is None,
        }
        if raw.headers:  # a replayed record that failed again says so (doa.dlq)
            envelope.update(replay_fields(raw.headers))
        value = self._dlq.encode(envelope)
        spec = self.topology.dead_letters
        key = self.node.name.encode()
        out_id = output_id(self.node.name + "/dlq", _stub(raw), 0)
        lineage = Lineage(out_id, self.node.name, self._dlq.schema.fingerprint,
                          (lineage_id(raw),), 0,
                          (Coordinates(raw.stream, raw.partition, raw.offset),))
        result.outputs.append(OutRecord(
            spec.name, partition_for(key, spec.partitions), key, value, now,
            ((LINEAGE_HEADER, pack_lineage(lineage)),), out_id,
        ))
        result.dead_letters += 1
        self.letters.tell(raw.stream, raw.partition, raw.offset, kind, message)


def lineage_id(raw: RawRecord) -> bytes:
    """The id of a raw record: its lineage header's, else derived from its coordinates."""
    try:
        lin = lineage_of(raw.headers)
    except Exception:
        lin = None
    return lin.id if lin else _stub(raw).id


def _stub(raw: RawRecord) -> Event:
    return Event({}, stream=raw.stream, partition=raw.partition, offset=raw.offset,
                 timestamp=raw.timestamp, key=raw.key)


def _has_model_version(schema: Any) -> bool:
    """Whether a record schema has an integer ``model_version`` field (maybe nullable)."""
    for f in schema.get("fields", ()) if isinstance(schema, dict) else ():
        if f.get("name") == "model_version":
            kinds = f["type"] if isinstance(f["type"], list) else [f["type"]]
            return any(k in ("int", "long") for k in kinds)
    return False


def _is_pair(value: object) -> bool:
    return isinstance(value, tuple) and len(value) == 2


def _message(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) < 2000 else text[:1997] + "..."
