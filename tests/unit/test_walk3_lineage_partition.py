"""`doa lineage`'s "learned by" and "counted in" on two input partitions, in memory.

A learner keeps a model and a metric per input partition; its model events (``partition``
field) and metric records (no such field: their lineage names the label they hang on) of
both partitions land on the same streams, interleaved. Walk finding (machines topology, 2
partitions): the search took the first record of the learner after the label whatever its
partition, so one run said ``learned by: models:1:1`` (a version of input partition 1) for a
prediction of partition 0, whose row ``doa dataset`` says version 3 of partition 0 learned.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from doa.events import Coordinates, Event, Lineage
from doa.lineage.log import Log, Record
from doa.lineage.walk import Scorer, Step, _prediction_links
from doa.topology.topology import Topology

T0 = 1_700_000_000_000
SCORER = Scorer("anomaly", "labels", "reading_id", None, None, None, "models", "metrics", True)

Row = tuple[int, dict[str, Any], Lineage | None]


def _lineage(n: int, *read_from: Coordinates) -> Lineage:
    return Lineage(bytes([n]) * 16, "anomaly", b"f" * 8, tuple(bytes([n + 1]) * 16
                                                             for _ in read_from), 2, read_from)


class _Log:
    """The part of :class:`Log` the prediction's links read: streams of several partitions,
    in memory (``{stream: {partition: [(timestamp, fields, lineage), ...]}}``)."""

    topology = Topology("empty")  # no nodes: the label's children are not searched
    broker = "memory"

    def __init__(self, streams: dict[str, dict[int, list[Row]]]) -> None:
        self.records = {
            name: {p: [Record(Event(fields, stream=name, partition=p, offset=i, timestamp=ts,
                                    id=lin.id if lin else bytes([100 + i]) * 16), lin)
                       for i, (ts, fields, lin) in enumerate(rows)]
                   for p, rows in parts.items()}
            for name, parts in streams.items()}

    def partitions(self, stream: str) -> list[int]:
        return sorted(self.records.get(stream, {}))

    def first_at(self, stream: str, partition: int, timestamp: int) -> int:
        rows = self.records[stream][partition]
        return next((i for i, r in enumerate(rows) if r.event.timestamp >= timestamp),
                    len(rows))

    def backwards(self, stream: str, partition: int, before: int) -> Iterator[Record]:
        return reversed(self.records[stream][partition][:before])

    def scan(self, stream: str, partition: int, start: int,
             until_ts: int | None = None) -> Iterator[Record]:
        for r in self.records[stream][partition][start:]:
            if until_ts is not None and r.event.timestamp > until_ts:
                return
            yield r


LABEL_AT = T0 + 500  # the label of reading 834, on labels partition 0


def _label(join: str) -> Row:
    return LABEL_AT, {"reading_id": join, "is_fault": False}, None


def _version(ts: int, partition: int, version: int, action: str = "created") -> Row:
    return ts, {"model": "anomaly", "action": action, "version": version,
                "partition": partition}, None


def _metric(ts: int, label_partition: int, value: float) -> Row:
    return ts, {"model": "anomaly", "model_version": 1, "value": value}, \
        _lineage(int(value * 10) + 1, Coordinates("labels", label_partition, 3))


def _links(streams: dict[str, dict[int, list[Row]]], read_from: tuple[Coordinates, ...],
           spec: Scorer = SCORER, horizon_ms: int = 60_000) -> dict[str, Step]:
    labels = {0: [_label("834")], 1: [_label("835")]}
    log = _Log({"labels": labels, **streams})
    prediction = Record(
        Event({"join": "834", "model": "anomaly", "model_version": 1}, stream="anomaly_scores",
              partition=1, offset=500, timestamp=T0, id=b"p" * 16),
        Lineage(b"p" * 16, "anomaly", b"f" * 8, (b"x" * 16,) * len(read_from), 1, read_from))
    steps = _prediction_links(cast(Log, log), prediction, spec, 8, 1_000, horizon_ms)
    [label] = [s for s in steps if s.relation == "label"]
    assert label.record is not None and label.record.event["reading_id"] == "834"
    return {s.relation: s for s in label.steps}


# Input partition 1's version and metric come first (on the stream partition read first, or
# earlier on the same one); input partition 0's come after.
STREAMS = {
    "models": {0: [_version(T0 + 600, 1, 2), _version(T0 + 700, 0, 2, "drift_ignored"),
                   _version(T0 + 900, 0, 3)]},
    "metrics": {0: [_metric(T0 + 600, 1, 0.1)], 1: [_metric(T0 + 900, 0, 0.2)]},
}


def _found(step: Step) -> dict[str, Any]:
    assert step.record is not None, step.note
    return dict(step.record.event)


def test_learned_by_and_counted_in_are_the_prediction_s_input_partition() -> None:
    links = _links(STREAMS, (Coordinates("machine_features", 0, 417),))
    learned = _found(links["learned by"])
    assert (learned["partition"], learned["version"], learned["action"]) == (0, 3, "created")
    assert _found(links["counted in"])["value"] == 0.2


def test_the_other_partition_s_prediction_finds_its_own() -> None:
    links = _links(STREAMS, (Coordinates("machine_features", 1, 417),))
    assert _found(links["learned by"])["version"] == 2
    assert _found(links["learned by"])["partition"] == 1
    assert _found(links["counted in"])["value"] == 0.1


def test_without_coordinates_the_label_s_partition_decides() -> None:
    links = _links(STREAMS, ())  # a version-1 header: parents by id only
    assert _found(links["learned by"])["version"] == 3
    assert _found(links["counted in"])["value"] == 0.2


def test_none_of_its_partition_is_said_with_the_partition() -> None:
    only_other = {"models": {0: [_version(T0 + 600, 1, 2)]},
                  "metrics": {0: [_metric(T0 + 600, 1, 0.1)]}}
    links = _links(only_other, (Coordinates("machine_features", 0, 417),))
    assert links["learned by"].record is None
    assert links["learned by"].note == ("no models record of anomaly on input partition 0 "
                                        "after the label yet")
    assert links["counted in"].record is None


# The walk's own run (2 partitions, a version every 500 labels of a partition, labels 5 a
# second): partition 0's version 3 comes 83 s after the label, and is written before
# partition 1's version 2, stamped 41 s after it (each partition keeps its own event time).
LATE = {"models": {0: [_version(LABEL_AT - 100, 0, 2), _version(LABEL_AT + 83_000, 0, 3),
                       _version(LABEL_AT + 41_000, 1, 2)]},
        "metrics": {}}


def test_a_version_long_after_the_label_is_found_past_the_other_partition_s_times() -> None:
    links = _links(LATE, (Coordinates("machine_features", 0, 417),))
    assert (_found(links["learned by"])["version"], _found(links["learned by"])["partition"]) \
        == (3, 0)  # as doa dataset says: learned_version 3 (83 s: past the 60 s horizon)
    links = _links(LATE, (Coordinates("machine_features", 1, 417),))
    assert (_found(links["learned by"])["version"], _found(links["learned by"])["partition"]) \
        == (2, 1)  # written after a record stamped later than the horizon: read on past it
