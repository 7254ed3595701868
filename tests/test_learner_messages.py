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
