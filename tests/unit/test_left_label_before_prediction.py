"""A label stamped days before its prediction's record is joined, but not silently.

The walk joined a label 9.5 days before its prediction as if fine (its outcome's delay_ms
-820800000, nothing in the log): a label stream replayed or mis-stamped, or a join value used
again. It still joins (nothing is dropped), and the node counts it in its state
(``labels_before``) and says so once in the log, naming the stream, the join value and the
gap; a label within ``label_wait_ms`` of its record is not counted.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from river import linear_model, metrics

from doa import Labels, Topology
from doa.testing import Harness
from tests.test_learner import SCHEMAS, phishing

DAY = 86_400_000
FEATURES = [10 * DAY, 10 * DAY + 1000, 10 * DAY + 2000, 10 * DAY + 3000]
LABELS = [DAY // 2, 10 * DAY + 1500, DAY // 2, 10 * DAY + 3500]  # two 9.5 days early


class Half:
    def predict_batch(self, X: Any) -> Any:
        return np.asarray(X)[:, 0] > 0.5


def topology(kind: str) -> Topology:
    t = Topology("early", schemas=SCHEMAS)
    t.stream("features", schema="testing.Phish")
    t.stream("labels", schema="testing.PhishLabel")
    t.stream("predictions", schema="doa.Prediction")
    t.stream("outcomes", schema="doa.Outcome")
    if kind == "learner":
        t.learner("node", features="features", labels="labels", predictions="predictions",
                  outcomes="outcomes", model=linear_model.LogisticRegression(),
                  metric=metrics.Accuracy(), join="id", label="label")
    else:
        t.model("node", reads="features", writes="predictions", model=Half(),
                features=["empty_server_form_handler"], join="id", versions=None,
                labels=Labels("labels", label="label", outcomes="outcomes"))
    return t


@pytest.mark.parametrize("kind", ["learner", "model"])
def test_a_label_days_before_its_prediction_is_joined_counted_and_told_once(
        kind: str, caplog: pytest.LogCaptureFixture) -> None:
    rows = phishing()[:4]
    h = Harness(topology(kind), batch_size=1)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=FEATURES)
    # each label published right after its record: met in the log after its prediction
    with caplog.at_level(logging.WARNING, logger="doa.learner.held"):
        for i, (_, y) in enumerate(rows):
            h.publish("labels", [{"id": i, "label": y}], timestamps=[LABELS[i]])
            h.run()
    delays = {o["join"]: o["delay_ms"] for o in h.records("outcomes")}
    assert delays == {"0": -9.5 * DAY, "1": 500, "2": -9.5 * DAY - 2000, "3": 500}
    assert h.state("node")[0]["labels_before"] == 2
    told = [r.getMessage() for r in caplog.records if "before its prediction" in r.getMessage()]
    assert told == [
        f"{kind} 'node': stream 'labels' partition 0 offset 0: the label of id='0' is stamped "
        "9.5 days (820800000 ms) before its prediction's record, more than "
        "label_wait_ms=60000; joined all the same (its outcome's delay_ms is negative): check "
        "the label stream's timestamps and join values; counted in the state's "
        "labels_before, told once per node"], told
