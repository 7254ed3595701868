"""A topology node that runs kernels on whole micro-batches, with its per-key state as arrays.

Examples
--------
>>> from doa.events import Event
>>> from doa.kernels import ewm, since_previous
>>> node = kernel_node("features", reads="readings", writes="features", key="sensor_id",
...                    time="ts", features={"temp": ("value", ewm(0.5)),
...                                         "gap": (None, since_previous())},
...                    select=["sensor_id", "ts"])
>>> batch = [Event({"sensor_id": "s1", "ts": ts, "value": v}, stream="readings",
...                partition=0, offset=i, timestamp=0)
...          for i, (ts, v) in enumerate([(1000, 1.0), (1250, 3.0)])]
>>> state, outputs = node.step(node.state(), batch)
>>> [record for _, record in outputs][1]
{'sensor_id': 's1', 'ts': 1250, 'temp_mean': 2.0, 'temp_var': 1.0, 'temp_zscore': 0.0, \
'gap_ms': 250.0}
>>> outputs[1][0] is batch[1], state.slots
(True, {'s1': 0})
>>> node.spec.describe()["features"]["gap"]
{'field': None, 'kernel': 'since_previous', 'outputs': ['gap_ms']}
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from doa.errors import StepError
from doa.events import Event
from doa.kernels.copying import holds, lacking_line, unheld_line
from doa.kernels.library import F64, I64, Kernel, warm_up
from doa.node import (
    Node,
    NodeKind,
    Stream,
    is_number,
    missing_fields,
    shown_type,
    stream_names,
)

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["KernelSpec", "KernelState", "avro_fields", "kernel_node"]

Features = Mapping[str, tuple[str | None, Kernel]]


@dataclass
class KernelState:
    """A node's state for one input partition: key → slot, and per feature a state array.

    Row ``slots[key]`` of ``arrays[feature]`` is that key's state for that feature. Arrays
    have room for ``capacity`` keys and double when a new key does not fit; everything is
    plain dicts and NumPy arrays, so the state pickles compactly.
    """

    slots: dict[str, int]
    arrays: dict[str, F64]

    @classmethod
    def empty(cls, widths: Mapping[str, int], capacity: int = 64) -> KernelState:
        """No key yet; room for ``capacity`` keys."""
        return cls({}, {f: np.zeros((capacity, w)) for f, w in widths.items()})

    @property
    def capacity(self) -> int:
        return min((len(a) for a in self.arrays.values()), default=0)

    def slots_for(self, keys: Sequence[str]) -> I64:
        """The slot of each key, giving new keys the next free slots (arrays grow to fit)."""
        slots = self.slots
        found = np.empty(len(keys), dtype=np.int64)
        for i, k in enumerate(keys):
            slot = slots.get(k)
            if slot is None:
                slot = slots[k] = len(slots)
            found[i] = slot
        if len(slots) > self.capacity:
            self._grow(len(slots))
        return found

    def _grow(self, needed: int) -> None:
        size = max(self.capacity, 1)
        while size < needed:
            size *= 2
        for f, a in self.arrays.items():
            grown = np.zeros((size, a.shape[1]))
            grown[: len(a)] = a
            self.arrays[f] = grown

    def row(self, feature: str, key: str) -> F64:
        """A copy of ``key``'s state row of ``feature``."""
        row: F64 = self.arrays[feature][self.slots[key]].copy()
        return row


@dataclass(frozen=True)
class KernelSpec(NodeKind):
    """The kind of a kernel node (see :class:`doa.node.NodeKind`): what :func:`kernel_node`
    was given, in the form checks, the runtime and the catalog read.

    Attributes
    ----------
    reads, writes : its input streams and its one output stream
    key, time : the key field and the event-time field (None: the Kafka timestamp)
    kernels : feature name → ``(value field, kernel)``
    fields : feature name → the output fields ``(name, "double" | "long")`` it adds
    input_fields : the input fields the step reads (None: all of them, ``select`` not given)
    select : the input fields copied to each output record (None: all of them)
    """

    kind = "kernel"
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    key: str
    time: str | None
    kernels: Features
    fields: dict[str, list[tuple[str, str]]]
    input_fields: tuple[str, ...] | None
    select: tuple[str, ...] | None = None

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.reads, self.writes

    def start(self) -> None:
        """Compile the kernels (:func:`~doa.kernels.warm_up`), so the first batch is not slow."""
        warm_up([k for _, k in self.kernels.values()])

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """Each output field is in the output schema with a type that holds it; the input
        fields the step reads are in the input schema, the value and time fields numbers, and
        the input fields it copies are in the output schema (:meth:`copy_problems`)."""
        out: list[str] = self.copy_problems(node, streams)
        for stream in self.writes:
            fields = streams.fields(stream)
            if fields is None:
                continue
            for group in self.fields.values():
                for name, kind in group:
                    if name not in fields:
                        out.append(f"kernel {node.name!r}: output field {name!r} ({kind}) is "
                                   f"not a field of stream {stream!r} ({streams.schema(stream)})")
                    elif not _accepts(fields[name], kind):
                        out.append(f"kernel {node.name!r}: output field {name!r} of stream "
                                   f"{stream!r} is {fields[name]}, the kernel writes {kind}")
        read = [(f"feature {f!r}", field) for f, (field, _) in self.kernels.items() if field]
        read += [("time", self.time)] if self.time else []
        for stream in self.reads:
            needed = self.input_fields or (self.key, *(field for _, field in read))
            out += missing_fields(node, streams, stream, dict.fromkeys(needed), "input")
            out += _not_numbers(node, streams, stream, read)
        return out

    def copy_problems(self, node: Node, streams: StreamInfo) -> list[str]:
        """One line per input and output stream whose copied input fields (``select``, or
        every field without it) are not all in the output schema, and one per copied field
        whose output type cannot hold the input's (:func:`~doa.kernels.copying.holds`): each
        of its records would be a dead letter (``field ... is not in the schema``, ``expected
        double, got str``), so ``doa check``, ``doa run`` and ``doa deploy`` refuse it.

        Examples
        --------
        >>> class Known:
        ...     def fields(self, stream):
        ...         return {"readings": {"id": "long", "t": "double", "humidity": "double"},
        ...                 "features": {"id": "long", "t": "double"}}[stream]
        ...     def schema(self, stream):
        ...         return {"readings": "iot.Reading", "features": "iot.Features"}[stream]
        >>> spec = KernelSpec(("readings",), ("features",), "id", None, {}, {}, None)
        >>> print(*spec.copy_problems(spec.node("featurize", lambda s, b: (s, [])), Known()))
        ... # doctest: +NORMALIZE_WHITESPACE
        kernel 'featurize' copies every field of its input stream 'readings' (iot.Reading) to
        its output: output field 'humidity' is not a field of stream 'features' (iot.Features),
        so every record would be a dead letter; add 'humidity' to iot.Features, with a default,
        or give the kernel select=['id', 't'] (the input fields to copy)
        """
        made = {n for group in self.fields.values() for n, _ in group}
        out: list[str] = []
        for target in self.writes:
            have = streams.fields(target)
            for source in self.reads:
                given = streams.fields(source)
                if have is None or given is None:
                    continue
                copied = [f for f in (given if self.select is None else self.select)
                          if f in given and f not in made]
                lacking = [f for f in copied if f not in have]
                ends = (source, streams.schema(source)), (target, streams.schema(target))
                if lacking:
                    out.append(lacking_line(node.name, *ends, lacking,
                                            [f for f in copied if f in have],
                                            self.select is not None))
                out += [unheld_line(node.name, *ends, f, given[f], have[f])
                        for f in copied if f in have and not holds(have[f], given[f])]
        return out

    def describe(self) -> dict[str, Any]:
        return {"key": self.key, "time": self.time,
                "features": {f: {"field": field, "kernel": k.name,
                                 "outputs": [n for n, _ in self.fields[f]]}
                             for f, (field, k) in self.kernels.items()},
                "streams": {"reads": list(self.reads), "writes": list(self.writes)}}


def kernel_node(name: str, reads: Stream | str | Iterable[Stream | str],
                writes: Stream | str, *, key: str, features: Features,
                time: str | None = None, select: Sequence[str] | None = None,
                initial_keys: int = 64) -> Node:
    """A node computing per-key kernel features for every input event.

    Parameters
    ----------
    name : the node's name
    reads, writes : input stream(s) and the one output stream
    key : the input field whose value (as ``str``) identifies the key
    features : feature name → ``(value field, kernel)``; the field may be None for kernels
        that ignore values (:func:`~doa.kernels.rate`, :func:`~doa.kernels.since_previous`).
        Output ``o`` of feature ``f`` is the output field ``f"{f}_{o}"``.
    time : the input field with the event time in ms; None: the record's Kafka timestamp
    select : input fields copied to each output record; None: all of them
    initial_keys : key slots allocated per partition before the first doubling

    Returns
    -------
    Node
        ``kind="kernel"``; its step emits, per input event and in order, ``(event, record)``
        with ``record`` = the selected input fields + every feature output. Each kernel is
        called once per batch. Its ``spec`` is a :class:`KernelSpec`: ``spec.start()``
        compiles the kernels (:func:`~doa.kernels.warm_up`), the runtime calls it at node
        start; ``spec.fields`` the output fields each feature adds (see :func:`avro_fields`),
        ``spec.input_fields`` the input fields the step reads (None: all of them). The same
        are in ``options`` (``on_start``, ``fields``, ``input_fields``) for older code.

    Notes
    -----
    The output stream's Avro schema is the user's: it must hold the selected fields and the
    feature fields, ``double`` each (``long`` for ``count``). A record whose key, time or value
    field is missing or null raises in the step, so the runtime dead-letters just that record;
    a NaN or infinite value is a missing value to the kernels (the key's state stays as it was,
    see :mod:`doa.kernels.library`), so its record is emitted.
    The step updates the state's arrays in place and returns the state; the runtime
    checkpoints the state before each batch, so a batch that fails leaves no trace.
    """
    feats = dict(features)
    for f, spec in feats.items():
        if not (isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[1], Kernel)):
            raise TypeError(f"kernel node {name!r}: feature {f!r} must be (field, Kernel), "
                            f"got {spec!r}")
    plan = [(f, field, k, k.param_array()) for f, (field, k) in feats.items()]
    fields = _output_names(feats)
    names = [n for group in fields.values() for n, _ in group]
    if len(set(names)) != len(names):
        raise ValueError(f"kernel node {name!r}: two features produce the same output field")
    value_fields = sorted({field for _, field, _, _ in plan if field is not None})
    keep = None if select is None else list(select)
    widths = {f: k.state_width for f, (_, k) in feats.items()}

    def step(state: KernelState, batch: list[Event]) -> tuple[KernelState, list[Any]]:
        n = len(batch)
        try:
            keys = [str(_required(e, key)) for e in batch]
            times = np.fromiter((_required(e, time) for e in batch), np.int64, n) \
                if time is not None else np.fromiter((e.timestamp for e in batch), np.int64, n)
            values = {v: np.fromiter((_required(e, v) for e in batch), np.float64, n)
                      for v in value_fields}
        except KeyError as exc:
            raise StepError(f"kernel node {name!r}: an input record has no field {exc}"
                            ) from exc
        except StepError as exc:
            raise StepError(f"kernel node {name!r}: {exc}") from exc
        slots = state.slots_for(keys)
        zeros = np.zeros(n)
        columns: list[list[Any]] = []
        for f, field, k, params in plan:
            out = np.full((n, len(k.outputs)), np.nan)
            k.fn(slots, times, values[field] if field is not None else zeros,
                 state.arrays[f], params, out)
            for j, o in enumerate(k.outputs):
                col = out[:, j]
                columns.append(col.astype(np.int64).tolist() if o in k.integer_outputs
                               else col.tolist())
        outputs: list[Any] = []
        try:
            for e, row in zip(batch, zip(*columns, strict=True), strict=True):
                record = dict(e) if keep is None else {f: e[f] for f in keep}
                record.update(zip(names, row, strict=True))
                outputs.append((e, record))
        except KeyError as exc:  # the runtime restores the state checkpointed before the batch
            raise StepError(f"kernel node {name!r}: an input record has no field {exc} "
                            "(in select)") from exc
        return state, outputs

    step.__qualname__ = step.__name__ = name
    kernels = [k for _, k in feats.values()]
    declared = KernelSpec(stream_names(reads), stream_names(writes), key, time, feats, fields,
                      None if keep is None else tuple(dict.fromkeys(
                          [key, *([time] if time else []), *value_fields, *keep])),
                      None if keep is None else tuple(keep))
    return declared.node(name, step, functools.partial(KernelState.empty, widths, initial_keys),
                     options={"on_start": functools.partial(warm_up, kernels), "fields": fields,
                              "input_fields": declared.input_fields})


def avro_fields(features: Features) -> list[dict[str, Any]]:
    """The Avro fields the features add to an output record, for the output's ``.avsc``.

    Examples
    --------
    >>> from doa.kernels import rate
    >>> avro_fields({"load": (None, rate(60_000))})
    [{'name': 'load_per_s', 'type': 'double'}]
    """
    return [{"name": n, "type": t} for group in _output_names(dict(features)).values()
            for n, t in group]


def _output_names(features: Features) -> dict[str, list[tuple[str, str]]]:
    return {f: [(f"{f}_{o}", "long" if o in k.integer_outputs else "double")
                for o in k.outputs] for f, (_, k) in features.items()}


def _accepts(avro_type: Any, kind: str) -> bool:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    allowed = {"double": {"double"}, "long": {"long", "double"}}[kind]
    return any(b in allowed for b in branches)


def _not_numbers(node: Node, streams: StreamInfo, stream: str,
                 read: Sequence[tuple[str, str]]) -> list[str]:
    """One problem per ``(feature, field)`` of ``read`` whose field ``stream`` does not type
    as a number: every record would be a dead letter.

    Examples
    --------
    >>> class Known:
    ...     def fields(self, stream): return {"temp": ["null", "double"], "status": "string"}
    ...     def schema(self, stream): return "iot.Reading"
    >>> n = Node("featurize", ("readings",), (), lambda s, b: (s, []), dict, kind="kernel")
    >>> _not_numbers(n, Known(), "readings", [("feature 't'", "temp"), ("feature 's'", "status")])
    ["kernel 'featurize', feature 's': field 'status' of stream 'readings' (iot.Reading) is \
string, not a number (int, long, float, double, boolean or decimal, optionally null)"]
    """
    fields = streams.fields(stream) or {}
    return [f"{node.kind} {node.name!r}, {what}: field {name!r} of stream {stream!r} "
            f"({streams.schema(stream)}) is {shown_type(fields[name])}, not a number (int, long, "
            "float, double, boolean or decimal, optionally null)"
            for what, name in read if name in fields and not is_number(fields[name])]


def _required(event: Event, field: str) -> Any:
    value = event[field]
    if value is None:
        raise StepError(f"field {field!r} is null")
    return value
