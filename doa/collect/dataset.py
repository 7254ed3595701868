"""``doa dataset``: what a learner learned on, one row per label, joined from its streams.

A model node with ``labels=`` gives the same rows: what it scored, against each label, from
its outcomes and predictions (no ``learned_version``: a model node learns nothing).

A learner (:mod:`doa.learner.node`) writes a ``doa.Outcome`` each time it learns from a
label, in the order it learns, and earlier a ``doa.Prediction`` holding the features it
predicted on, which are the features it learns on (no leakage). A row is one outcome joined
to its prediction: the prediction is the one of the same model and join value whose
timestamp is the outcome's minus its ``delay_ms`` and whose model version is the outcome's
(the learner keeps one pending prediction per join value, so this names exactly one).

Columns, in order:

- ``outcome_id``, ``prediction_id`` (hex event ids), ``features_id`` and ``label_id`` (the
  ids of the feature and label records the learner read: the outcome's and prediction's
  lineage parents), ``predicted_at`` and ``learned_at`` (UTC), ``partition`` (the outcome's:
  the learner's input partition when the outcomes stream is partitioned as its inputs),
  ``join``, ``key``;
- the features as logged, one column each (the prediction's ``features``, then its
  ``categories``; a name taken by another column gets the prefix ``feature_`` or
  ``category_``), then ``probability_<class>`` for classifiers that give probabilities;
- ``prediction``, ``score`` (anomaly detectors), ``label``, ``correct``, ``error``,
  ``model_version`` (the version that predicted) and ``learned_version`` (the first version
  the learner published, on its ``doa.ModelEvent`` stream, whose model has learned from the
  row; as ``doa lineage`` says "learned by"). It counts labels per partition and compares
  with each event's ``labels`` field. None when no version holds the row yet, when a reset
  or rollback dropped it before one did, without a models stream, or when the outcomes
  stream is not partitioned as the learner's inputs.

Rows come in learning order: partition by partition, each in the order the learner learned.
An outcome written twice (a replay after a crash: same event id) counts once. A record that
``doa dlq --replay`` re-published for a node reading one of these streams (its ``doa.replay``
header names the node, :func:`doa.events.replay_node`) is that node's second chance, not
something the learner did again: it is left out, counted per stream in
:attr:`Dataset.replays`. ``--from`` and
``--to`` bound the outcomes (offsets, or learning times). A record read that cannot be
decoded, has no value, or has a malformed lineage header stops the collect with a one-line
:class:`doa.client.RecordError` naming stream, partition, offset and reason.
"""

from __future__ import annotations

import bisect
import logging
import time
import warnings
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from doa.client import decode_at, lineage_at
from doa.collect.bounds import (
    Bound,
    Span,
    check_range,
    first_offset,
    in_time,
    last_offset,
    timed,
    widen,
)
from doa.collect.bounds import empty_window as window_note
from doa.collect.read import Reader, codecs_for, load
from doa.errors import DoaError
from doa.events import coordinate_id, replay_node
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

HEAD = ("outcome_id", "prediction_id", "features_id", "label_id", "predicted_at",
        "learned_at", "partition", "join", "key")
TAIL = ("prediction", "score", "label", "correct", "error", "model_version", "learned_version")


@dataclass
class Dataset:
    """Rows of a learner's training set, their columns, and what the join found."""

    learner: str
    columns: list[str]
    rows: list[dict[str, Any]]
    features: list[str] = field(default_factory=list)  # numeric feature columns
    categories: list[str] = field(default_factory=list)  # text feature columns
    probabilities: list[str] = field(default_factory=list)
    duplicates: int = 0  # outcomes read twice (same id), counted once
    replays: dict[str, int] = field(default_factory=dict)  # replayed for a node: left out
    missing: int = 0  # outcomes in range whose prediction was not found (left out)
    seconds: float = 0.0
    kind: str = "learner"  # or "model node" (a model node with labels)


class Scored(NamedTuple):
    """What a dataset needs of a model node with ``labels=`` (:mod:`doa.model`): it scores as
    a learner predicts, and its outcomes meet its predictions as a learner's do; it learns
    nothing, so no models stream (``learned_version`` stays None)."""

    name: str
    outcomes: str | None
    predictions: str
    models: None = None


def learner_spec(t: Topology, learner: str) -> Any:
    """The :class:`~doa.learner.spec.LearnerSpec` of node ``learner`` (or a :class:`Scored`
    for a model node with labels), checked for a dataset."""
    node = t.nodes.get(learner)
    if node is not None and node.kind == "model":
        model: Any = node.spec
        lab = model.labels
        outcomes = None if lab is None or lab.outcomes is None else \
            str(getattr(lab.outcomes, "name", lab.outcomes))
        if outcomes is None:
            raise DoaError(f"model node {learner!r} writes no outcomes stream: its predictions "
                           "never met their labels in the log (declare labels=Labels(..., "
                           "outcomes=STREAM))")
        return Scored(learner, outcomes, model.predictions)
    if node is None or node.kind != "learner":
        learners = [n for n, x in t.nodes.items() if x.kind in ("learner", "model")]
        raise DoaError(f"topology {t.name!r} has no learner or model node {learner!r} "
                       f"(learners and model nodes: {', '.join(learners) or 'none'})")
    spec: Any = node.spec
    if spec.labels is None:
        raise DoaError(f"learner {learner!r} learns without labels (it scores each record, then "
                       "learns on it): it has no outcomes to make a dataset of; its predictions "
                       f"are the record of what it saw: `doa export TOPOLOGY {spec.predictions}`")
    if spec.outcomes is None:
        raise DoaError(f"learner {learner!r} writes no outcomes stream: what it learned on is "
                       "not in the log (declare outcomes= in its Outputs)")
    return spec


def aligned(t: Topology, spec: Any) -> bool:
    """Whether an outcome's partition is the learner partition that learned from it."""
    inputs, out = t.streams[spec.features], t.streams[spec.outcomes]
    if out.partitions != inputs.partitions:
        return False
    if inputs.partitions == 1 or out.key is None:
        return True
    return out.key == "key" and (spec.key is None or inputs.key == spec.key)


def collect(topology: Topology | str, learner: str, *, broker: str, start: Bound | None = None,
            end: Bound | None = None) -> Dataset:
    """The training set of ``learner``; see the module docstring."""
    check_range(start, end)
    began = time.perf_counter()
    t = load(topology)
    spec = learner_spec(t, learner)
    versions = spec.models is not None and aligned(t, spec)
    codecs = codecs_for(t, [s for s in (spec.outcomes, spec.predictions, spec.models) if s],
                        broker)
    replays: dict[str, int] = {}
    with Reader(broker) as reader:
        outcomes, duplicates, counted, span = _outcomes(reader, spec, codecs[spec.outcomes],
                                                        start, end, versions, replays)
        found = _predictions(reader, spec, codecs[spec.predictions], outcomes, replays)
        starts = _version_starts(reader, spec, codecs[spec.models], replays) \
            if versions and counted else None
    data = _join(spec, outcomes, found, starts)
    data.duplicates, data.replays = duplicates, replays
    data.kind = "model node" if isinstance(spec, Scored) else "learner"
    data.seconds = time.perf_counter() - began
    if data.missing:
        warnings.warn(f"learner {learner!r}: {data.missing} outcomes in range have no "
                      f"prediction in stream {spec.predictions!r} (deleted by retention?); "
                      "they are left out", stacklevel=2)
    if not outcomes and timed(start, end):
        log.warning(empty_window(learner, spec.outcomes, start, end, span))
    return data


def empty_window(learner: str, stream: str, start: Bound | None, end: Bound | None,
                 span: Span | None) -> str:
    """Why a time window holds no outcome: the times the learner's outcomes do span.

    ``span`` is (first, last, count) of the timestamps (event time: the label's) of the
    learner's outcomes in the offset range, None if it has none.

    Examples
    --------
    >>> note = empty_window("scorer", "outcomes", Bound(time_ms=1_700_000_000_000), None,
    ...                     (1_699_000_000_000, 1_699_100_000_000, 20))
    >>> note.split("; ")[:2]  # doctest: +NORMALIZE_WHITESPACE
    ["learner 'scorer': no outcome in --from 2023-11-14T22:13:20.000Z --to (none)",
     "the 20 outcomes of 'outcomes' are stamped 2023-11-03T08:26:40.000Z ..
      2023-11-04T12:13:20.000Z (event time: the labels' times, not when they were written)"]
    """
    return window_note(f"learner {learner!r}", "outcome", stream, start, end, span,
                       "event time: the labels' times, not when they were written",
                       f"stream {stream!r} holds none of its outcomes at all (has it learned "
                       "from a label yet?)")


def _id(m: Any) -> bytes:
    lin = lineage_at(m)
    return lin.id if lin else coordinate_id(m.topic, m.partition, m.offset)


def _replayed(m: Any, replays: dict[str, int], count: bool = True) -> bool:
    """Whether ``m`` was re-published by ``doa dlq --replay`` for a node (with ``count``:
    counted by stream)."""
    if m.headers and replay_node(m.headers) is not None:
        if count:
            replays[m.topic] = replays.get(m.topic, 0) + 1
        return True
    return False


def _outcomes(reader: Reader, spec: Any, codec: Any, start: Bound | None, end: Bound | None,
              versions: bool, replays: dict[str, int]
              ) -> tuple[list[dict[str, Any]], int, bool, Span | None]:
    """The learner's outcomes in range, in order, each with ``_n``: its label's rank in its
    partition (counted from the partition's first offset when ``versions``); and the first
    and last timestamps and the count of its outcomes in the offset range (None: none)."""
    rows: list[dict[str, Any]] = []
    span: Span | None = None
    seen: set[bytes] = set()
    duplicates = 0
    counted = versions
    for p, (begin, stop) in sorted(reader.ends(spec.outcomes).items()):
        lo, hi = first_offset(start, begin), last_offset(end, stop)
        if versions and begin > 0:
            counted = False  # the first labels are gone: ranks cannot be counted
        rank = 0
        for batch in reader.batches(spec.outcomes, p, begin if counted else lo, hi):
            for m in batch:
                if _replayed(m, replays, m.offset >= lo and in_time(m.timestamp, start, end)):
                    continue  # not a label learned again: no rank
                event_id = _id(m)
                if event_id in seen:
                    duplicates += 1
                    continue
                seen.add(event_id)
                record = decode_at(codec, m)
                if record["model"] != spec.name:
                    continue
                rank += 1
                if m.offset < lo:
                    continue
                span = widen(span, m.timestamp)
                if in_time(m.timestamp, start, end):
                    lin = lineage_at(m)
                    record.update(_id=event_id, _n=rank, _p=p, _ts=m.timestamp,
                                  _label=lin.parents[0] if lin and lin.parents else None)
                    rows.append(record)
    return rows, duplicates, counted, span


def _key(model_version: int, join: str, predicted_at: int) -> tuple[int, str, int]:
    return model_version, join, predicted_at


def _predictions(reader: Reader, spec: Any, codec: Any, outcomes: list[dict[str, Any]],
                 replays: dict[str, int]) -> dict[int, tuple[bytes, Any, dict[str, Any]]]:
    """For each outcome (by index) its prediction: (id, features record id, record)."""
    wanted: dict[tuple[int, str, int], deque[int]] = defaultdict(deque)
    for i, o in enumerate(outcomes):
        wanted[_key(o["model_version"], o["join"], o["_ts"] - o["delay_ms"])].append(i)
    found: dict[int, tuple[bytes, Any, dict[str, Any]]] = {}
    if not wanted:
        return found
    earliest = min(k[2] for k in wanted)
    seen: set[bytes] = set()
    for p, (begin, stop) in sorted(reader.ends(spec.predictions).items()):
        for batch in reader.batches(spec.predictions, p, begin, stop):
            for m in batch:
                if m.timestamp < earliest or _replayed(m, replays):
                    continue  # a prediction's timestamp is its features' (predicted_at)
                event_id = _id(m)
                if event_id in seen:
                    continue
                seen.add(event_id)
                record = decode_at(codec, m)
                if record["model"] != spec.name:
                    continue
                waiting = wanted.get(_key(record["model_version"], record["join"],
                                          record["timestamp"]))
                if waiting:
                    lin = lineage_at(m)
                    found[waiting.popleft()] = (
                        event_id, lin.parents[0] if lin and lin.parents else None, record)
            if len(found) == len(outcomes):
                return found
    return found


def _version_starts(reader: Reader, spec: Any, codec: Any,
                    replays: dict[str, int]) -> dict[int, list[tuple[int, str, int]]]:
    """Per learner partition: its model events as ``(labels, action, version)``, in the
    order the learner made them (by label count, ties in log order); ignored drift left out."""
    events: dict[int, list[tuple[int, str, int]]] = defaultdict(list)
    seen: set[bytes] = set()
    for p, (begin, stop) in sorted(reader.ends(spec.models).items()):
        for batch in reader.batches(spec.models, p, begin, stop):
            for m in batch:
                if _replayed(m, replays):
                    continue
                event_id = _id(m)
                if event_id in seen:
                    continue
                seen.add(event_id)
                e = decode_at(codec, m)
                if e["model"] == spec.name and e["action"] != "drift_ignored":
                    events[e["partition"]].append((e["labels"], e["action"], e["version"]))
    for items in events.values():
        items.sort(key=lambda item: item[0])  # stable: equal counts keep the log's order
    return events


def learned_in(events: list[tuple[int, str, int]] | None, rank: int) -> int | None:
    """The first published version whose model learned from a partition's ``rank``-th label.

    A ``created`` event with ``labels`` = L keeps the model after its L-th label; a ``reset``
    or ``rollback`` after label L drops what was learned since the last kept version.

    >>> events = [(1000, "created", 2), (1500, "reset", 3), (2000, "created", 4)]
    >>> [learned_in(events, k) for k in (1, 1000, 1001, 1500, 1501, 2001)]
    [2, 2, None, None, 4, None]
    """
    if not events:
        return None
    i = bisect.bisect_left(events, rank, key=lambda e: e[0])
    if i == len(events):
        return None
    _, action, version = events[i]
    return version if action == "created" else None


def _join(spec: Any, outcomes: list[dict[str, Any]],
          found: dict[int, tuple[bytes, Any, dict[str, Any]]],
          starts: dict[int, list[tuple[int, str, int]]] | None) -> Dataset:
    from doa.collect.columns import feature_columns, utc

    data = Dataset(spec.name, [], [])
    matched = [(o, found[i]) for i, o in enumerate(outcomes) if i in found]
    data.missing = len(outcomes) - len(matched)
    names = feature_columns(spec, [p for _, (_, _, p) in matched], set(HEAD) | set(TAIL))
    data.features, data.categories, data.probabilities = names.numeric, names.text, names.proba
    data.columns = [*HEAD, *names.all(), *TAIL]
    for o, (pid, fid, p) in matched:
        row: dict[str, Any] = {
            "outcome_id": o["_id"].hex(), "prediction_id": pid.hex(),
            "features_id": fid.hex() if fid else None,
            "label_id": o["_label"].hex() if o["_label"] else None,
            "predicted_at": utc(p["timestamp"]), "learned_at": utc(o["_ts"]),
            "partition": o["_p"], "join": o["join"], "key": o["key"]}
        row.update(names.values(p))
        row.update(prediction=o["prediction"], score=p["score"], label=o["label"],
                   correct=o["correct"], error=o["error"], model_version=o["model_version"],
                   learned_version=None if starts is None
                   else learned_in(starts.get(o["_p"]), o["_n"]))
        data.rows.append(row)
    return data
