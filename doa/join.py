"""Keyed join nodes: pair the records of two streams that share a key within a time window.

``topology.join(name, left=..., right=..., on=..., within_ms=..., writes=...)`` declares one.
A left and a right record join when their ``on`` values are equal and their timestamps are at
most ``within_ms`` apart (both ways, as Kafka Streams' ``JoinWindows.ofTimeDifference``); each
such pair yields one output, ``output(left, right)`` (default: the two records merged, the
left's fields winning), whose parents are both records.

Determinism: the runtime hands the node its two inputs merged in timestamp order
(:mod:`doa.runtime.merge`; ties left first, the declared order), the same order on every run
and replay. The buffers live in the node's state, so they are snapshotted with the offsets
they cover and survive ``kill -9``. A record waits in its buffer until the event time of the
records processed passes its own by more than ``within_ms``; then it can match nothing more
and leaves. One that never matched is reported on the optional ``unmatched`` stream (a
``doa.UnmatchedLabel``, reason ``unknown``), as the learner reports labels that matched
nothing. The buffers hold at most ``max_pending`` records; beyond that the oldest leaves
early, reported with reason ``overflow``.

Examples
--------
>>> from doa.events import Event
>>> node = join_node("enrich", left="claims", right="policies", on="policy_id",
...                  within_ms=100, writes="enriched")
>>> node.kind, node.reads, node.writes
('join', ('claims', 'policies'), ('enriched',))
>>> def ev(stream, offset, ts, **record):
...     return Event(record, stream=stream, partition=0, offset=offset, timestamp=ts)
>>> batch = [ev("policies", 0, 10, policy_id="p1", holder="ann"),
...          ev("claims", 0, 50, policy_id="p1", amount=3.0),
...          ev("claims", 1, 500, policy_id="p1", amount=9.0)]
>>> state, out = node.step(node.state(), batch)
>>> [(stream, record, [p.stream for p in parents]) for parents, stream, record in out]
[('enriched', {'policy_id': 'p1', 'holder': 'ann', 'amount': 3.0}, ['policies', 'claims'])]
>>> state["pending"], state["matched"]
(1, 1)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from doa.node import Node, NodeKind, Stream, missing_fields, stream_name

if TYPE_CHECKING:
    from doa.node import StreamInfo

__all__ = ["UNMATCHED_SCHEMA", "JoinSpec", "join_node"]

UNMATCHED_SCHEMA = "doa.UnmatchedLabel"
Output = Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]
# a buffered record: [timestamp, side (0 left, 1 right), key, event, times matched]
Entry = list[Any]


@dataclass(frozen=True)
class JoinSpec(NodeKind):
    """The kind of a join node (see :class:`doa.node.NodeKind`).

    Attributes
    ----------
    left, right : the two streams joined (co-partitioned by the join key)
    left_on, right_on : the key field of each side
    within_ms : the most the timestamps of a joined pair differ by
    writes : the joined stream; unmatched : the stream of ``doa.UnmatchedLabel`` reports
    max_pending : most records buffered (both sides) per input partition
    """

    kind = "join"
    left: str
    right: str
    left_on: str
    right_on: str
    within_ms: int
    writes: str
    unmatched: str | None = None
    max_pending: int = 100_000

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        writes = (self.writes,) if self.unmatched is None else (self.writes, self.unmatched)
        return (self.left, self.right), writes

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        """The key fields are in their streams, both streams put a key on the same partition
        (:meth:`copartition_problems`); the unmatched stream is doa.UnmatchedLabel."""
        out = [*missing_fields(node, streams, self.left, [self.left_on], "join key"),
               *missing_fields(node, streams, self.right, [self.right_on], "join key"),
               *self.copartition_problems(node, streams)]
        declared = streams.schema(self.unmatched) if self.unmatched is not None else None
        if declared is not None and declared != UNMATCHED_SCHEMA:
            out.append(f"join {node.name!r}: its unmatched stream {self.unmatched!r} must have "
                       f"schema {UNMATCHED_SCHEMA}, not {declared}")
        return out

    def copartition_problems(self, node: Node, streams: StreamInfo) -> list[str]:
        """The two inputs keyed by different fields, one not its join field, with more than
        one (and the same number of) partitions: a pair lands on two partitions, never meets.

        Each side keyed by its join field, or both by one field (a field the join key
        determines), is accepted; an unkeyed side goes where its writer puts it, which a
        topology does not say. Other partition counts are refused by
        :func:`doa.topology.validate.problems`.

        Examples
        --------
        >>> class Layout:
        ...     def fields(self, stream): return None
        ...     def schema(self, stream): return None
        ...     def partitioning(self, stream):
        ...         return {"claims": ("claim_id", 4), "policies": ("policy_id", 4)}[stream]
        >>> node = join_node("assess", left="claims", right="policies", on="policy_id",
        ...                  within_ms=100, writes="assessed")
        >>> print(*node.spec.copartition_problems(node, Layout()))
        ... # doctest: +NORMALIZE_WHITESPACE
        join 'assess': its left stream 'claims' is keyed by 'claim_id' and its right stream
        'policies' by 'policy_id' (4 partitions each), joined on 'policy_id': a left and a
        right record with equal keys land on different partitions and never join; key 'claims'
        by 'policy_id'
        """
        layout = getattr(streams, "partitioning", None)
        left = layout(self.left) if layout is not None else None
        right = layout(self.right) if layout is not None else None
        if left is None or right is None or left[0] is None or right[0] is None \
                or left[1] != right[1] or left[1] <= 1:
            return []
        if left[0] == right[0] or (left[0], right[0]) == (self.left_on, self.right_on):
            return []
        on = repr(self.left_on) if self.left_on == self.right_on else (
            f"{self.left_on!r} = {self.right_on!r}")
        fixes = [f"{stream!r} by {field!r}" for stream, key, field in (
            (self.left, left[0], self.left_on), (self.right, right[0], self.right_on))
            if key != field]
        return [f"join {node.name!r}: its left stream {self.left!r} is keyed by {left[0]!r} and "
                f"its right stream {self.right!r} by {right[0]!r} ({left[1]} partitions each), "
                f"joined on {on}: a left and a right record with equal keys land on different "
                f"partitions and never join; key {' and '.join(fixes)}"]

    def describe(self) -> dict[str, Any]:
        roles = {"left": self.left, "right": self.right, "joined": self.writes}
        if self.unmatched is not None:
            roles["unmatched"] = self.unmatched
        return {"on": [self.left_on, self.right_on], "within_ms": self.within_ms,
                "max_pending": self.max_pending, "streams": roles}


def join_node(name: str, *, left: Stream | str, right: Stream | str, on: str | tuple[str, str],
              within_ms: int, writes: Stream | str, unmatched: Stream | str | None = None,
              max_pending: int = 100_000, output: Output | None = None) -> Node:
    """A windowed stream-stream join of ``left`` and ``right`` on a key field.

    Parameters
    ----------
    name : the node's name
    left, right : the streams joined; the node reads them merged by timestamp
    on : the key field of both streams, or ``(left_field, right_field)``
    within_ms : a pair joins when its timestamps differ by at most this (>= 0)
    writes : the stream of joined records
    unmatched : optional stream (schema ``doa.UnmatchedLabel``) of records that left the
        buffer without a match (``unknown``) or early, the buffer being full (``overflow``)
    max_pending : most records buffered, both sides together, per input partition
    output : ``output(left_record, right_record) -> record`` (default: ``{**right, **left}``)
    """
    left_on, right_on = (on, on) if isinstance(on, str) else on
    if within_ms < 0 or max_pending < 1:
        raise ValueError(f"join {name!r}: within_ms must be >= 0 and max_pending >= 1, got "
                         f"{within_ms} and {max_pending}")
    spec = JoinSpec(str(stream_name(left)), str(stream_name(right)), left_on, right_on,
                    within_ms, str(stream_name(writes)), stream_name(unmatched), max_pending)
    if spec.left == spec.right:
        raise ValueError(f"join {name!r}: left and right are the same stream {spec.left!r}")
    return spec.node(name, _Join(name, spec, output).step, initial)


def initial() -> dict[str, Any]:
    """A join's state per input partition: buffers by key and side, and their time order."""
    return {"keys": {}, "order": deque(), "pending": 0, "matched": 0, "expired": 0,
            "overflow": 0}


class _Join:
    """The pure step of a join node; every mutable value lives in the state."""

    def __init__(self, name: str, spec: JoinSpec, output: Output | None) -> None:
        self.name = name
        self.spec = spec
        self.output = output or (lambda left, right: {**right, **left})

    def step(self, state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
        spec = self.spec
        out: list[Any] = []
        for event in batch:
            side = 0 if event.stream == spec.left else 1
            self._expire(state, event, out)
            key = event[spec.left_on if side == 0 else spec.right_on]
            buffers = state["keys"].setdefault(key, ([], []))
            entry: Entry = [event.timestamp, side, key, event, 0]
            for other in buffers[1 - side]:
                if abs(other[0] - event.timestamp) <= spec.within_ms:
                    left, right = (event, other[3]) if side == 0 else (other[3], event)
                    out.append(([other[3], event], spec.writes,
                                self.output(dict(left), dict(right))))
                    other[4] += 1
                    entry[4] += 1
                    state["matched"] += 1
            buffers[side].append(entry)
            state["order"].append(entry)
            state["pending"] += 1
            while state["pending"] > spec.max_pending:
                self._drop(state, state["order"].popleft(), event, out, "overflow")
        return state, out

    def _expire(self, state: dict[str, Any], event: Any, out: list[Any]) -> None:
        """Drop the records that no record at ``event``'s time or later can join."""
        order, horizon = state["order"], event.timestamp - self.spec.within_ms
        while order and order[0][0] < horizon:
            self._drop(state, order.popleft(), event, out, "unknown")

    def _drop(self, state: dict[str, Any], entry: Entry, event: Any, out: list[Any],
              reason: str) -> None:
        _, side, key, record, matches = entry
        buffers = state["keys"][key]
        buffers[side].remove(entry)
        if not buffers[0] and not buffers[1]:
            del state["keys"][key]
        state["pending"] -= 1
        state["expired" if reason == "unknown" else "overflow"] += 1
        spec = self.spec
        if spec.unmatched is None or (matches and reason == "unknown"):
            return
        detail = (f"no {'right' if side == 0 else 'left'} record with this key within "
                  f"within_ms={spec.within_ms}" if reason == "unknown" else
                  f"buffer of {spec.max_pending} records is full; it had matched {matches} "
                  "time(s)")
        parents = [record] if record is event else [record, event]
        out.append((parents, spec.unmatched, {
            "reason": reason, "model": self.name, "join": str(key), "stream": record.stream,
            "partition": record.partition, "offset": record.offset,
            "timestamp": record.timestamp, "detail": detail}))
