"""Walk a record's lineage through the log: ancestry by coordinates, descendants by time.

**Ancestry** is one fetch per parent: a version-2 ``doa`` header names each parent's stream,
partition and offset (:class:`doa.events.Coordinates`), and the fetched parent's id is checked
against the header. A version-1 header (ids only) falls back to a bounded search of the node's
input streams around the record's time (see below). A record without parents (a publisher's)
is a raw input and ends the walk.

**Descendants** cannot be named by the parent, so they are searched in a bounded window:
every output's timestamp is its latest parent's (DESIGN 8), so a child is never earlier than
its parent. For each stream written by a node that reads the record's stream, the search
seeks (binary search on record time, :meth:`doa.lineage.log.Log.first_at`) to the parent's
time minus ``window`` ms (slack for records written out of time order) and reads forward
until a record is later than the parent's time plus ``window``, keeping records whose header
lists the parent. It stops sooner once every writing node has emitted an output anchored on a
later offset of the parent's partition (a node processes a partition in offset order).

**A record that failed** leads to its dead letter (the failing node and the error) and, once
``doa dlq --replay`` re-published it, to the replay and what came of that
(:mod:`doa.lineage.letters`); a dead letter's own descendants are its replay.

**A learner's prediction** also leads to its label (the labels stream record with the same
join value, searched from the prediction's time up to ``horizon`` ms later: the learner's
``max_delay_ms`` when it has one), the label's outcome (a child of the label), the first
metric and model version of the prediction's input partition after the label ("counted in",
"learned by": the version that learned from it; however long after, :func:`next_after`),
and back to the model version that made it ("made by"). So does the prediction of a model
node with ``labels=`` (:mod:`doa.model`, its candidate's shadow prediction too): label,
outcome, "counted in", and "made by" the model event of its version; a
model node learns nothing, so no "learned by". A model node without labels: "made by" only.

Examples
--------
>>> Step("parent", None).relation
'parent'
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from doa.events import Event
from doa.lineage import letters
from doa.lineage.log import Log, Record, input_partition, on_partition
from doa.topology.topology import Topology

__all__ = ["Step", "Trace", "ancestry", "descendants", "trace"]

WINDOW_MS = 1_000
HORIZON_MS = 60_000


@dataclass
class Step:
    """One record in a lineage tree and how it relates to the record it hangs under."""

    relation: str
    record: Record | None
    steps: list[Step] = field(default_factory=list)
    note: str = ""


@dataclass
class Trace:
    """The lineage of one record: its ancestry and its descendants, and what it cost."""

    root: Record
    ancestry: list[Step]
    descendants: list[Step]
    fetches: int = 0
    seconds: float = 0.0


def trace(log: Log, root: Record, *, depth: int = 8, window_ms: int = WINDOW_MS,
          horizon_ms: int = HORIZON_MS, forward: bool = True) -> Trace:
    """Ancestry and (with ``forward``) descendants of ``root``, ``depth`` levels each."""
    began, fetches = time.perf_counter(), log.fetches
    up = ancestry(log, root, depth, window_ms)
    down = descendants(log, root, depth, window_ms, horizon_ms) if forward else []
    return Trace(root, up, down, log.fetches - fetches, time.perf_counter() - began)


# -- ancestry -----------------------------------------------------------------------------------
def ancestry(log: Log, rec: Record, depth: int, window_ms: int = WINDOW_MS) -> list[Step]:
    """The parents of ``rec``, each with its own parents, ``depth`` levels deep."""
    lin = rec.lineage
    if depth <= 0 or lin is None or not lin.parents:
        return []
    steps = []
    for i, parent_id in enumerate(lin.parents):
        if lin.coordinates:
            c = lin.coordinates[i]
            found = log.get(c.stream, c.partition, c.offset)
            note = "" if found is not None and found.event.id == parent_id else \
                f"{c} holds no record with id {parent_id.hex()} (deleted by retention?)"
            if note:
                found = None
        else:
            found = _search_parent(log, rec, parent_id, window_ms)
            note = "" if found else (f"parent {parent_id.hex()} not found within "
                                     f"{window_ms} ms before the record (version-1 header)")
        step = Step("parent", found, note=note)
        if found is not None:
            step.steps = ancestry(log, found, depth - 1, window_ms)
        steps.append(step)
    return steps


def _search_parent(log: Log, rec: Record, parent_id: bytes, window_ms: int) -> Record | None:
    """A parent named only by id: search the node's inputs at most ``window_ms`` back."""
    topology, lin = log.topology, rec.lineage
    if topology is None or lin is None or lin.node not in topology.nodes:
        return None
    t = rec.event.timestamp
    for stream in topology.nodes[lin.node].reads:
        for p in log.partitions(stream):
            for found in log.scan(stream, p, log.first_at(stream, p, t - window_ms), t):
                if found.event.id == parent_id:
                    return found
    return None


# -- descendants --------------------------------------------------------------------------------
def descendants(log: Log, rec: Record, depth: int, window_ms: int = WINDOW_MS,
                horizon_ms: int = HORIZON_MS) -> list[Step]:
    """The records derived from ``rec``, ``depth`` levels deep (see module docstring)."""
    if depth <= 0 or log.topology is None:
        return []
    if rec.event.stream == log.topology.dead_letters.name:
        return _replays(log, rec, depth, window_ms, horizon_ms)
    steps = [Step("child", c, descendants(log, c, depth - 1, window_ms, horizon_ms))
             for c in children(log, rec, window_ms)]
    for letter in letters.letters(log, rec):
        steps.append(Step("dead letter", letter,
                          _replays(log, letter, depth - 1, window_ms, horizon_ms),
                          note=letters.summary(letter.event)))
    scorer = scorer_of(log.topology, rec.event.stream)
    if scorer is not None:
        steps.extend(_prediction_links(log, rec, scorer, depth, window_ms, horizon_ms))
    return steps


def _replays(log: Log, letter: Record, depth: int, window_ms: int,
             horizon_ms: int) -> list[Step]:
    """The replay of a dead letter (with what came of it), or why there is none."""
    if depth <= 0:
        return []
    again, note = letters.replay(log, letter)
    if again is None:
        return [Step("replay", None, note=note)]
    return [Step("replay", again, descendants(log, again, depth - 1, window_ms, horizon_ms))]


def children(log: Log, rec: Record, window_ms: int = WINDOW_MS,
             streams: list[str] | None = None) -> list[Record]:
    """Records whose header lists ``rec`` as a parent (first copy of each id); dead letters
    are not searched here (:func:`doa.lineage.letters.letters`)."""
    topology = log.topology
    assert topology is not None
    e = rec.event
    writers: dict[str, set[str]] = {}
    for node in topology.nodes.values():
        if e.stream in node.reads:
            for s in node.writes:
                if s != topology.dead_letters.name and (streams is None or s in streams):
                    writers.setdefault(s, set()).add(node.name)
    found: dict[bytes, Record] = {}
    for stream, nodes in writers.items():
        for p in log.partitions(stream):
            for child in _window(log, stream, p, e, window_ms, nodes):
                found.setdefault(child.event.id, child)
    return list(found.values())


def _window(log: Log, stream: str, p: int, parent: Event, window_ms: int,
            nodes: set[str]) -> Iterator[Record]:
    start = log.first_at(stream, p, parent.timestamp - window_ms)
    passed: set[str] = set()
    for r in log.scan(stream, p, start, parent.timestamp + window_ms):
        lin = r.lineage
        if lin is None:
            continue
        if parent.id in lin.parents:
            yield r
        elif lin.coordinates and lin.node in nodes and r.event.timestamp >= parent.timestamp:
            anchor = lin.coordinates[-1]
            if (anchor.stream, anchor.partition) == (parent.stream, parent.partition) and \
                    anchor.offset > parent.offset:
                passed.add(lin.node)
                if passed >= nodes:
                    return


# -- a prediction that waits for its label -------------------------------------------------------
class Scorer(NamedTuple):
    """What the walk needs of a node whose predictions meet labels: a learner, or a model node
    with ``labels=`` (``learns``: whether a label makes a new model version); or of a model
    node with a models stream and no labels (``labels`` None: only "made by")."""

    name: str
    labels: str | None
    join: str
    max_delay_ms: int | None
    outcomes: str | None
    unmatched: str | None
    models: str | None
    metrics: str | None
    learns: bool


def scorer_of(topology: Topology, stream: str) -> Scorer | None:
    """The node whose predictions ``stream`` holds, if they meet labels (or, a model node's,
    its versions are announced on a models stream).

    >>> from doa.topology.topology import Topology
    >>> scorer_of(Topology("empty"), "predictions") is None
    True
    """
    for node in topology.nodes.values():
        spec: Any = node.spec
        if node.kind == "learner" and spec.predictions == stream and spec.labels is not None:
            return Scorer(spec.name, spec.labels, spec.join, spec.max_delay_ms, spec.outcomes,
                          spec.unmatched, spec.models, spec.metrics, True)
        lab = getattr(spec, "labels", None)
        if (node.kind == "model" and stream in (spec.predictions, spec.shadow)
                and lab is not None and spec.join is not None):
            return Scorer(spec.name, _named(lab.stream), spec.join, None, _named(lab.outcomes),
                          _named(lab.unmatched), spec.models, _named(lab.metrics), False)
        if node.kind == "model" and stream == spec.predictions and spec.models is not None:
            return Scorer(spec.name, None, spec.join, None, None, None, spec.models, None, False)
    return None


def _named(stream: Any) -> Any:
    return None if stream is None else str(getattr(stream, "name", stream))


def _prediction_links(log: Log, rec: Record, spec: Scorer, depth: int, window_ms: int,
                      horizon_ms: int) -> list[Step]:
    e = rec.event
    horizon = spec.max_delay_ms if spec.max_delay_ms is not None else horizon_ms
    steps = [_made_by(log, rec, spec, horizon)]
    if spec.labels is None:
        return steps
    label = _first(log, spec.labels, e.timestamp - window_ms, e.timestamp + horizon,
                   lambda r: str(r.event.get(spec.join)) == str(e.get("join")))
    if label is None:
        bound = ("the learner's max_delay_ms" if spec.max_delay_ms is not None else
                 "--horizon; a later label: give a longer one")
        steps.append(Step("label", None, note=f"no {spec.labels} record with "
                                              f"{spec.join}={e.get('join')!r} within "
                                              f"{horizon} ms after the prediction ({bound})"))
        return steps
    under = [Step("child", c, descendants(log, c, depth - 2, window_ms, horizon_ms))
             for c in children(log, label, window_ms,
                               [s for s in (spec.outcomes, spec.unmatched) if s])]
    # the learner's state is per input partition: only that partition's versions and metrics
    made_on = input_partition(rec.lineage)
    made_on = label.event.partition if made_on is None else made_on
    for relation, stream in (("learned by", spec.models if spec.learns else None),
                             ("counted in", spec.metrics)):
        if stream is not None:
            after = next_after(log, stream, label, spec.name, made_on, window_ms)
            under.append(Step(relation, after, note="" if after else
                              f"no {stream} record of {spec.name} on input partition "
                              f"{made_on} after the label yet"))
    steps.append(Step("label", label, under))
    return steps


def next_after(log: Log, stream: str, label: Record, node: str, partition: int,
               window_ms: int = WINDOW_MS) -> Record | None:
    """The first record of ``node`` on ``stream`` for input ``partition`` after ``label``
    (:func:`on_partition`; a model event that made no version, ``drift_ignored``, passed
    over): the version that learned from it, the metric that counted it.

    However long after the label: a version comes every so many labels of its partition. The
    read starts ``window_ms`` before the label's time (binary search) and goes on past other
    partitions' records, whose event times may run ahead or behind (each input partition
    keeps its own), to the first one of ``partition`` or the end of the stream.
    """
    best: Record | None = None
    for p in log.partitions(stream):
        for r in log.scan(stream, p, log.first_at(stream, p, label.event.timestamp - window_ms)):
            e = r.event
            if e.get("model") == node and e.get("action") != "drift_ignored" and \
                    on_partition(r, partition) and _after(r, label):
                if best is None or e.timestamp < best.event.timestamp:
                    best = r
                break
    return best


def _made_by(log: Log, rec: Record, spec: Scorer, horizon: int) -> Step:
    """The model event of the version that made prediction ``rec``: the last one of that
    version at or before the prediction's time, else (a learner's) the first that made it up
    to ``horizon`` ms after (a version a learner made on a label it took ahead of these
    features carries that label's later time; a rollback to it later made nothing, and a model
    node's events are stamped in time); else a note saying why there is none
    (:func:`made_by_missing`)."""
    version = int(rec.event.get("model_version") or (rec.lineage.model_version
                                                     if rec.lineage else 0))
    if spec.models is None:
        return Step("made by", None, note=f"model version {version} ({spec.name} writes no "
                                          "models stream)")
    made_on = input_partition(rec.lineage)  # each input partition has its own versions

    def ours(r: Record) -> bool:  # the node's event for the prediction's input partition
        return r.event.get("model") == spec.name and on_partition(r, made_on)

    for p in log.partitions(spec.models):
        start = log.first_at(spec.models, p, rec.event.timestamp + 1)
        for r in log.backwards(spec.models, p, start):
            if not ours(r):
                continue
            if r.event.get("version") == version:
                return Step("made by", r)
            if int(r.event.get("version") or 0) < version:
                break
    at = rec.event.timestamp  # a model node's events are stamped in time: none after made it
    later = None if not spec.learns else _first(  # nor did a rollback to the version later
        log, spec.models, at + 1, at + horizon, lambda r: ours(r) and r.event.get(
            "version") == version and r.event.get("action") != "rollback")
    if later is not None:
        return Step("made by", later, note=made_later(later.event.timestamp - at, spec.learns))
    return Step("made by", None, note=made_by_missing(spec, version, horizon))


def made_later(ms: int, learns: bool) -> str:
    """Why a version's model event is stamped ``ms`` after a prediction it made.

    >>> print(made_later(499, True))  # doctest: +NORMALIZE_WHITESPACE
    stamped 499 ms after the prediction, at the event time of the label that made the
    version: the learner took that label ahead of these features (labels published before
    the readings, or features that lagged)
    """
    if not learns:  # a model node's versions come from doa model publish/promote, in time
        return f"stamped {ms} ms after the prediction"
    return (f"stamped {ms} ms after the prediction, at the event time of the label that made "
            "the version: the learner took that label ahead of these features (labels "
            "published before the readings, or features that lagged)")


def made_by_missing(spec: Scorer, version: int, horizon: int) -> str:
    """Why no model event of ``version`` was found for a prediction of ``spec``'s node.

    A learner starts at version 1, which no model event announces; every later version has
    one, stamped with the event time of the record that made it: a label (or a drift event,
    a command), which may come after the predictions of that version.

    >>> s = Scorer("scorer", "labels", "txn_id", None, None, None, "models", None, True)
    >>> made_by_missing(s, 1, 60_000)
    'model version 1: the initial model of scorer, which no model event announces'
    >>> print(made_by_missing(s, 2, 60_000))  # doctest: +NORMALIZE_WHITESPACE
    model version 2: no models record of scorer version 2 at or before the prediction's time,
    nor up to 60000 ms after it (a version made on a label taken ahead of its features carries
    that label's event time: try a longer --horizon), or its event is gone
    >>> made_by_missing(s._replace(learns=False), 3, 60_000)
    'model version 3: the model scorer started with (no model event), or its event is gone'
    """
    if not spec.learns:
        return (f"model version {version}: the model {spec.name} started with (no model "
                "event), or its event is gone")
    if version <= 1:
        return f"model version {version}: the initial model of {spec.name}, which no model " \
               "event announces"
    return (f"model version {version}: no {spec.models} record of {spec.name} version "
            f"{version} at or before the prediction's time, nor up to {horizon} ms after it (a "
            "version made on a label taken ahead of its features carries that label's event "
            "time: try a longer --horizon), or its event is gone")


def _after(r: Record, label: Record) -> bool:
    """Whether ``r`` came after ``label`` in its node's processing order."""
    e, lab = r.event, label.event
    if e.timestamp > lab.timestamp or (r.lineage and lab.id in r.lineage.parents):
        return True
    for c in r.lineage.coordinates if r.lineage else ():
        if (c.stream, c.partition) == (lab.stream, lab.partition):
            return c.offset >= lab.offset
    return False


def _first(log: Log, stream: str, since: int, until: int, match: Any) -> Record | None:
    for p in log.partitions(stream):
        for r in log.scan(stream, p, log.first_at(stream, p, since), until):
            if match(r):
                return r
    return None


def flatten(steps: list[Step]) -> Iterator[Step]:
    """Every step of a tree, depth first."""
    for s in steps:
        yield s
        yield from flatten(s.steps)
