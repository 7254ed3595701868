"""A learner's messages say what they are about, whole (walk findings): a duplicate *feature*
record was called a "duplicate label 'r77'"; a compiled learner's NaN dead letter was cut
mid-word in ``doa run`` ("fix the valu…"), as a dead letter's line keeps only a message's
first line and at most :data:`doa.runtime.tell.MAX_MESSAGE` characters of it.
"""

from __future__ import annotations

import logging
import math

import pytest
from river import linear_model, metrics

from doa import Topology
from doa.learner import held
from doa.runtime.tell import MAX_MESSAGE
from doa.testing import Harness
from tests.test_learner import SCHEMAS, approval, phishing, run_learner
from tests.test_learner import topology as learning_topology


def _without_unmatched() -> Topology:
    t = Topology("learning", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction")):
        t.stream(name, schema=schema)
    t.learner("r", features="features", labels="labels", predictions="predictions",
              model=linear_model.LogisticRegression(), metric=metrics.Accuracy(), join="id",
              label="label")
    return t


def test_a_duplicate_feature_record_is_called_one() -> None:
    rows = phishing()[:2]
    h = Harness(_without_unmatched())
    h.publish("features", [{"id": 77, **rows[0][0]}, {"id": 77, **rows[1][0]}],
              timestamps=[0, 1])
    h.run()
    [letter] = h.dead_letters
    assert letter["message"].startswith(
        "learner 'r': duplicate feature record for join value '77' (a second feature record "
        "with a join value whose prediction still waits for its label"), letter["message"]
    assert "label '77'" not in letter["message"]


def test_a_compiled_learner_s_nan_dead_letter_line_is_whole(
        caplog: pytest.LogCaptureFixture) -> None:
    rows = approval()[:20]
    rows[6] = ({**rows[6][0], "gallup": math.nan}, rows[6][1])
    t = learning_topology(linear_model.LinearRegression(), metrics.MAE(), "testing.Approval",
                          "testing.ApprovalLabel", feature_fields=list(rows[0][0]),
                          compiled=True)
    with caplog.at_level(logging.WARNING, logger="doa.runtime"):
        h = run_learner(t, rows, delay=0)
    [letter] = h.dead_letters
    first = letter["message"].splitlines()[0]
    assert first == ("learner 'model': feature 'gallup' is nan in features:0:6: fix the value "
                     "at its source; this record is a dead letter (a compiled model takes "
                     "every feature)")
    assert len(first) < MAX_MESSAGE
    assert "`doa lineage features:0:6` shows the input" in letter["message"]
    told = [r.getMessage() for r in caplog.records if "dead-lettered" in r.getMessage()]
    assert told and all(not line.endswith("…") for line in told), told
    assert told[0].endswith("(a compiled model takes every feature)"), told


@pytest.mark.parametrize("case", ["orphan label", "label twice", "full buffer", "late label"])
def test_without_an_unmatched_stream_a_report_not_about_the_record_in_hand_is_dropped(
        case: str, caplog: pytest.LogCaptureFixture) -> None:
    """Walk 6: a label that matched nothing made every later record of its partition a dead
    letter, for ever (the report raised while the learner processed that later record, and
    the rollback kept the label held). Now the learner scores every record as the same
    learner with ``unmatched=`` does, and drops (a line in the log) exactly what that one
    reports; a late label is the record in hand: still its own dead letter."""
    rows = phishing()[:40]
    features = [{"id": i, **x} for i, (x, _) in enumerate(rows)]
    labels = [{"id": i, "label": y} for i, (_, y) in enumerate(rows)]
    options: dict[str, object] = {"label_wait_ms": 1_000}
    f_ts, l_ts = [70_000 + i for i in range(40)], [70_000 + i for i in range(40)]
    if case == "orphan label":  # its record never comes (dead-lettered upstream)
        labels, l_ts = [{"id": 999, "label": True}, *labels], [0, *l_ts]
    elif case == "label twice":  # an at-least-once label producer
        labels, l_ts = [labels[0], *labels], [0, *l_ts]
    elif case == "full buffer":
        options["max_pending"] = 5
        labels, l_ts = labels[30:], l_ts[30:]
    else:
        options["max_delay_ms"] = 10
        l_ts = [t + (100 if i == 7 else 0) for i, t in enumerate(l_ts)]

    def run(t: Topology) -> Harness:
        h = Harness(t, batch_size=8)
        h.publish("features", features, timestamps=f_ts)
        h.publish("labels", labels, timestamps=l_ts)
        h.run()
        return h

    reporting = run(learning_topology(linear_model.LogisticRegression(), metrics.Accuracy(),
                                      "testing.Phish", "testing.PhishLabel", **options))
    t = Topology("learning", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                         ("metrics", "doa.Metric")):
        t.stream(name, schema=schema)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              outcomes="outcomes", metrics="metrics", model=linear_model.LogisticRegression(),
              metric=metrics.Accuracy(), join="id", label="label", **options)
    before = held._DROPPED.get("learner 'model'", 0)
    with caplog.at_level(logging.WARNING, logger="doa.learner"):
        silent = run(t)
    if case == "full buffer":  # the line names the evicted join value, and what pushed it out
        told = [r.getMessage() for r in caplog.records if "evicted" in r.getMessage()]
        assert told[0].startswith(
            "learner 'model': evicted prediction for join value '0' (buffer of 5 pending "
            "predictions is full; pushed out by features:0:5) dropped"), told
    reported = reporting.records("unmatched")
    assert reported, "the case must make the learner report something"
    assert [dict(p) for p in silent.records("predictions")] == \
        [dict(p) for p in reporting.records("predictions")]
    assert len(silent.records("predictions")) == 40
    in_hand = [u for u in reported if u["reason"] == "late"]
    assert held._DROPPED.get("learner 'model'", 0) - before == len(reported) - len(in_hand)
    assert [(d["stream"], d["offset"]) for d in silent.dead_letters] == \
        [(u["stream"], u["offset"]) for u in in_hand]
    assert [dict(o) for o in silent.records("outcomes")] == \
        [dict(o) for o in reporting.records("outcomes")]
