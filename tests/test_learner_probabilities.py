"""A classifier's predictions carry its probabilities whatever the metric.

A walk found every prediction's ``probabilities`` empty under ``metrics.Accuracy()`` (the
learner called ``predict_one`` for metrics that need labels), so a node reading
``p["probabilities"]["True"]`` never fired. The reference is a plain River loop.
"""

from __future__ import annotations

import pytest
from river import linear_model, metrics, multiclass, preprocessing

from tests.test_learner import phishing, run_learner, topology


def model() -> preprocessing.StandardScaler:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


@pytest.mark.parametrize("metric", [metrics.Accuracy, metrics.ROCAUC, metrics.F1])
def test_predictions_carry_what_river_predicts_under_any_metric(metric: type) -> None:
    rows = phishing()[:300]
    h = run_learner(topology(model(), metric(), "testing.Phish", "testing.PhishLabel"), rows,
                    delay=0)
    reference, expected = model(), []
    for x, y in rows:  # delay 0: each label comes before the next features
        expected.append((reference.predict_proba_one(x), reference.predict_one(x)))
        reference.learn_one(x, y)
    got = [(p["probabilities"], p["prediction"]) for p in h.records("predictions")]
    assert len(got) == len(rows)
    for (proba, label), (want_proba, want_label) in zip(got, expected, strict=True):
        assert proba == pytest.approx({str(k): v for k, v in want_proba.items()}, abs=1e-12)
        assert label == want_label


def test_a_classifier_without_probabilities_predicts_labels_only() -> None:
    rows = phishing()[:100]
    ovo = multiclass.OneVsOneClassifier(linear_model.LogisticRegression())
    h = run_learner(topology(ovo, metrics.Accuracy(), "testing.Phish", "testing.PhishLabel"),
                    rows, delay=0)
    predictions = h.records("predictions")
    assert len(predictions) == len(rows) and h.dead_letters == []
    assert all(p["probabilities"] == {} for p in predictions)
    assert {p["prediction"] for p in predictions} <= {True, False, None}
