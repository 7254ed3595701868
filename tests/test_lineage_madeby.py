"""`doa lineage`'s "made by" on a models stream in memory: the model event of a prediction's
version, and a reason that is true when there is none.

A learner's model event carries the event time of the label that made the version. When the
learner took labels ahead of their features (labels published before the readings: its
feature input was idle), that time is later than the predictions the version made, and the
walk said "not found (model version 2: the initial model of scorer, or its event is gone)"
though version 2 is not the initial model and its event is in the log (seen on the fraud
topology: labels published first, the scorer run alone, then the transactions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from doa.events import Event
from doa.lineage.log import Log, Record
from doa.lineage.walk import Scorer, Step, _made_by

T0 = 1_700_000_000_000
SCORER = Scorer("scorer", "labels", "txn_id", None, "outcomes", None, "models", None, True)


class _Log:
    """The part of :class:`Log` that "made by" reads: one partition per stream, in memory."""

    topology = None
    broker = "memory"

    def __init__(self, streams: dict[str, list[tuple[int, dict[str, Any]]]]) -> None:
        self.records = {name: [Record(Event(fields, stream=name, partition=0, offset=i,
                                            timestamp=ts, id=bytes([i]) * 16), None)
                               for i, (ts, fields) in enumerate(rows)]
                        for name, rows in streams.items()}

    def partitions(self, stream: str) -> list[int]:
        return [0] if stream in self.records else []

    def first_at(self, stream: str, partition: int, timestamp: int) -> int:
        rows = self.records[stream]
        return next((i for i, r in enumerate(rows) if r.event.timestamp >= timestamp),
                    len(rows))

    def backwards(self, stream: str, partition: int, before: int) -> Iterator[Record]:
        return reversed(self.records[stream][:before])

    def scan(self, stream: str, partition: int, start: int,
             until_ts: int | None = None) -> Iterator[Record]:
        for r in self.records[stream][start:]:
            if until_ts is not None and r.event.timestamp > until_ts:
                return
            yield r


def _created(version: int, ts: int) -> tuple[int, dict[str, Any]]:
    return ts, {"model": "scorer", "action": "created", "version": version}


def _made(models: list[tuple[int, dict[str, Any]]], version: int, at: int,
          spec: Scorer = SCORER, horizon: int = 60_000) -> Step:
    log = _Log({"models": models})
    prediction = Record(Event({"model_version": version, "join": "7"}, stream="predictions",
                              partition=0, offset=0, timestamp=at, id=b"p" * 16), None)
    return _made_by(cast(Log, log), prediction, spec, horizon)


def test_a_version_stamped_after_its_prediction_is_found_and_says_why() -> None:
    # Labels taken ahead of their features: version 2 learned from the label of the
    # transaction at T0+999 (stamped T0+999), made the predictions from T0+500 on.
    models = [_created(2, T0 + 999), _created(3, T0 + 1499)]
    step = _made(models, 2, T0 + 500)
    assert step.record is not None and step.record.event["version"] == 2
    assert step.note.startswith("stamped 499 ms after the prediction, at the event time of the "
                                "label that made the version"), step.note
    assert "labels published before the readings" in step.note
    before = _made(models, 2, T0 + 1200)  # stamped before this one: found as always, no note
    assert before.record is not None and before.record.event.offset == 0
    assert before.note == ""


def test_version_one_of_a_learner_is_its_initial_model_which_has_no_event() -> None:
    step = _made([_created(2, T0 + 999)], 1, T0 + 500)
    assert step.record is None
    assert step.note == ("model version 1: the initial model of scorer, which no model event "
                         "announces")


def test_a_later_version_not_found_is_never_called_the_initial_model() -> None:
    step = _made([_created(2, T0 + 100), _created(3, T0 + 90_000)], 3, T0 + 500)
    assert step.record is None
    assert "initial model" not in step.note, step.note
    assert step.note.startswith("model version 3: no models record of scorer version 3 at or "
                                "before the prediction's time, nor up to 60000 ms after it"), \
        step.note
    assert "--horizon" in step.note and step.note.endswith("or its event is gone")
    longer = _made([_created(2, T0 + 100), _created(3, T0 + 90_000)], 3, T0 + 500,
                   horizon=100_000)
    assert longer.record is not None and longer.record.event["version"] == 3


def test_a_model_node_version_not_found_is_the_model_it_started_with() -> None:
    step = _made([], 3, T0 + 500, spec=SCORER._replace(learns=False))
    assert step.record is None
    assert step.note == ("model version 3: the model scorer started with (no model event), "
                         "or its event is gone")


def test_a_rollback_to_the_version_after_the_prediction_did_not_make_it() -> None:
    """Walk 8: a prediction of a model node's first model, rolled back to three minutes
    later, was "made by" that rollback with --horizon 600000 ("not found" without)."""
    rollback = (T0 + 198_920, {"model": "scorer", "action": "rollback", "version": 1})
    node = _made([rollback], 1, T0, spec=SCORER._replace(learns=False), horizon=600_000)
    assert node.record is None and node.note.startswith("model version 1: the model scorer "
                                                        "started with"), node.note
    learner = _made([_created(2, T0 + 100), rollback], 1, T0, horizon=600_000)
    assert learner.record is None and "initial model" in learner.note, learner.note
    ahead = _made([_created(2, T0 + 999), (T0 + 1_500, {"model": "scorer",
                                                        "action": "rollback", "version": 2})],
                  2, T0 + 500)  # the version made ahead is still found, not the rollback
    assert ahead.record is not None and ahead.record.event["action"] == "created"


def test_the_event_of_the_prediction_s_own_input_partition_is_the_one_found() -> None:
    # A race decided on each input partition: version 3 promoted on partition 0 at T0+100,
    # on partition 1 at T0+300; a prediction read from partition 1 was made by the latter.
    from doa.events import Coordinates, Lineage

    models = [(T0 + 100, {"model": "scorer", "action": "promoted", "version": 3,
                          "partition": 0, "reason": "p0"}),
              (T0 + 300, {"model": "scorer", "action": "promoted", "version": 3,
                          "partition": 1, "reason": "p1"})]
    log = _Log({"models": models})

    def made(partition: int) -> Step:
        lineage = Lineage(b"o" * 16, "scorer", b"f" * 8, (b"t" * 16,), 3,
                          (Coordinates("transactions", partition, 42),))
        prediction = Record(Event({"model_version": 3, "join": "7"}, stream="predictions",
                                  partition=0, offset=5, timestamp=T0 + 500, id=b"p" * 16),
                            lineage)
        return _made_by(cast(Log, log), prediction, SCORER, 60_000)

    assert made(1).record is not None and made(1).record.event["reason"] == "p1"
    assert made(0).record is not None and made(0).record.event["reason"] == "p0"
