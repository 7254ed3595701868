"""The learner node against River's own progressive validation, in the in-memory harness.

``river.evaluate.progressive_val_score`` (through ``stream.simulate_qa``) is the reference:
on one partition, with the same data, model, metric and label delay, the learner's final
metric must equal River's to 1e-12.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from river import datasets, evaluate, linear_model, metrics, preprocessing

from doa import Topology
from doa.testing import Harness

SCHEMAS = Path(__file__).parent / "schemas"


def phishing() -> list[tuple[dict[str, float], bool]]:
    return [({k: float(v) for k, v in x.items()}, bool(y)) for x, y in datasets.Phishing()]


def approval() -> list[tuple[dict[str, float], float]]:
    return [({k: float(v) for k, v in x.items()}, float(y))
            for x, y in datasets.TrumpApproval()]


def topology(model: Any, metric: Any, features: str, labels: str, **options: Any) -> Topology:
    t = Topology("learning", schemas=SCHEMAS)
    t.stream("features", schema=features)
    t.stream("labels", schema=labels)
    t.stream("predictions", schema="doa.Prediction")
    t.stream("outcomes", schema="doa.Outcome")
    t.stream("metrics", schema="doa.Metric")
    t.stream("unmatched", schema="doa.UnmatchedLabel")
    t.learner("model", features="features", labels="labels", predictions="predictions",
              outcomes="outcomes", metrics="metrics", unmatched="unmatched", model=model,
              metric=metric, join="id", label="label", **options)
    return t


def run_learner(t: Topology, data: list[tuple[dict[str, float], Any]], delay: int,
                batch_size: int = 64) -> Harness:
    """Feature i at time i ms, its label at i + delay ms (River: moment=None, delay=delay)."""
    h = Harness(t, batch_size=batch_size)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(data)],
              timestamps=range(len(data)))
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(data)],
              timestamps=(i + delay for i in range(len(data))))
    h.run()
    return h


CASES = [
    ("classifier, Accuracy (predict_one)", phishing, "testing.Phish", "testing.PhishLabel",
     lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(), metrics.Accuracy),
    ("classifier, LogLoss (predict_proba_one)", phishing, "testing.Phish",
     "testing.PhishLabel",
     lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(), metrics.LogLoss),
    ("regressor, MAE", approval, "testing.Approval", "testing.ApprovalLabel",
     lambda: preprocessing.StandardScaler() | linear_model.LinearRegression(), metrics.MAE),
]


@pytest.mark.parametrize("delay", [0, 1, 25, 300])
@pytest.mark.parametrize(("name", "data", "features", "labels", "model", "metric"), CASES,
                         ids=[c[0] for c in CASES])
def test_final_metric_equals_progressive_val_score(name: str, data: Any, features: str,
                                                   labels: str, model: Any, metric: Any,
                                                   delay: int) -> None:
    rows = data()
    reference = evaluate.progressive_val_score(rows, model(), metric(), moment=None,
                                               delay=delay or None)
    h = run_learner(topology(model(), metric(), features, labels, metrics_every=100), rows,
                    delay)
    state = h.state("model")[0]
    assert state["labels"] == len(rows)
    assert state["metric"].get() == pytest.approx(reference.get(), abs=1e-12, rel=0)
    assert h.dead_letters == [] and h.records("unmatched") == []
    published = h.records("metrics")
    assert [m["labels"] for m in published] == list(range(100, len(rows) + 1, 100))


def test_batch_size_does_not_change_anything() -> None:
    rows = phishing()[:400]
    runs = [run_learner(topology(preprocessing.StandardScaler() |
                                 linear_model.LogisticRegression(), metrics.Accuracy(),
                                 "testing.Phish", "testing.PhishLabel"), rows, 7, size)
            for size in (1, 13, 500)]
    outputs = [[(e.id, dict(e)) for e in h.records("outcomes")] for h in runs]
    assert outputs[0] == outputs[1] == outputs[2]


def test_no_leakage_the_model_learns_on_the_logged_features() -> None:
    # Publish each page's features, then the same id again with different features (as if
    # recomputed later) before the label: the learner must learn on what it predicted with.
    rows = phishing()[:300]
    t = topology(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metrics.Accuracy(), "testing.Phish", "testing.PhishLabel")
    h = Harness(t)
    for i, (x, _) in enumerate(rows):
        changed = {k: v + 100.0 for k, v in x.items()}
        h.publish("features", [{"id": i, **x}, {"id": i, **changed}],
                  timestamps=[3 * i, 3 * i + 1])
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=[3 * i + 2 for i in range(len(rows))])
    h.run()
    reference = evaluate.progressive_val_score(
        rows, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=None)
    state = h.state("model")[0]
    assert state["metric"].get() == pytest.approx(reference.get(), abs=1e-12, rel=0)
    learned = state["model"]["StandardScaler"].means
    assert learned == pytest.approx({k: sum(x[k] for x, _ in rows) / len(rows)
                                     for k in rows[0][0]}, abs=1e-9)
    predictions = h.records("predictions")
    assert len(predictions) == len(rows), "the re-sent features were recognised as duplicates"


def test_unknown_late_and_evicted_labels_are_reported_not_dropped() -> None:
    rows = phishing()[:50]
    t = topology(linear_model.LogisticRegression(), metrics.Accuracy(), "testing.Phish",
                 "testing.PhishLabel", max_pending=10, max_delay_ms=30, label_wait_ms=500)
    h = Harness(t)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=range(len(rows)))
    labels = [{"id": i, "label": y} for i, (_, y) in enumerate(rows) if i % 5 == 0]
    labels.append({"id": 999, "label": True})
    h.publish("labels", labels, timestamps=[100 + i for i in range(len(labels))])
    h.run()
    # Labels whose features never came (ids 0..35 were evicted, 999 never existed) are held,
    # not lost, until the features' event time passes theirs by label_wait_ms.
    assert list(h.state("model")[0]["early"]) == [str(i) for i in range(0, 40, 5)] + ["999"]
    h.publish("features", [{"id": 1000, **rows[0][0]}], timestamps=[599])
    h.run()
    assert len(h.state("model")[0]["early"]) == 9, "features 499 ms later: still held"
    h.publish("features", [{"id": 1001, **rows[0][0]}], timestamps=[1000])
    h.run()
    assert h.state("model")[0]["early"] == {}
    reasons: dict[str, list[str]] = {}
    for u in h.records("unmatched"):
        reasons.setdefault(u["reason"], []).append(u["join"])
    assert reasons["evicted"] == [str(i) for i in range(40)], "the oldest go first"
    # ids 40..49 were still pending: 40 and 45 get labels 60+ ms after their features
    assert reasons["late"] == ["40", "45"]
    assert sorted(reasons["unknown"], key=int) == [str(i) for i in range(0, 40, 5)] + ["999"]
    assert h.records("outcomes") == []


def test_labels_wait_for_features_that_lag_a_whole_batch() -> None:
    """Every label is learned when its features come late (a lagging feature node)."""
    rows = phishing()[:400]
    delay = 5
    t = topology(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metrics.Accuracy(), "testing.Phish", "testing.PhishLabel")
    h = Harness(t, batch_size=64)
    # The labels are all in before any features: the learner runs on them first, as a node
    # whose feature stream is computed by a lagging upstream node would.
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=(i + delay for i in range(len(rows))))
    h.run()
    assert len(h.state("model")[0]["early"]) == len(rows)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=range(len(rows)))
    h.run()
    state = h.state("model")[0]
    assert state["early"] == {} and state["pending"] == {}
    assert h.records("unmatched") == []
    assert state["labels"] == len(rows)
    assert len(h.records("outcomes")) == len(rows)
    # Each label is learned right after its own prediction: no leakage, every label counted,
    # as River's progressive_val_score with delay 0 does.
    reference = evaluate.progressive_val_score(
        rows, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=None)
    assert state["metric"].get() == pytest.approx(reference.get(), abs=1e-12, rel=0)
    # An outcome's parents are its label and its features; its time is the later of the two.
    outcome = h.records("outcomes")[0]
    assert len(outcome.lineage.parents) == 2
    assert outcome.timestamp == delay


def test_duplicate_features_and_labels_are_reported() -> None:
    rows = phishing()[:3]
    t = topology(linear_model.LogisticRegression(), metrics.Accuracy(), "testing.Phish",
                 "testing.PhishLabel")
    h = Harness(t)
    h.publish("features", [{"id": 0, **rows[0][0]}, {"id": 0, **rows[1][0]}], timestamps=[0, 1])
    h.publish("labels", [{"id": 7, "label": True}, {"id": 7, "label": False}],
              timestamps=[2, 3])
    h.run()
    unmatched = [(u["reason"], u["join"]) for u in h.records("unmatched")]
    assert unmatched == [("duplicate", "0"), ("duplicate", "7")]
    assert len(h.records("predictions")) == 1


@pytest.mark.parametrize("delay", [0, 7])
@pytest.mark.parametrize(("name", "data", "features", "labels", "model", "metric"), CASES,
                         ids=[c[0] for c in CASES])
def test_the_compiled_path_gives_the_same_records_and_equals_river(
        name: str, data: Any, features: str, labels: str, model: Any, metric: Any,
        delay: int) -> None:
    rows = data()[:800]
    fields = list(rows[0][0])  # River's dict order: the dot product sums in it
    runs = {}
    for compiled in (True, False):
        t = topology(model(), metric(), features, labels, metrics_every=100,
                     feature_fields=fields, compiled=compiled, version_every=250)
        assert t.nodes["model"].options["compiled"] is compiled
        runs[compiled] = run_learner(t, rows, delay, batch_size=97)
    for stream in ("predictions", "outcomes", "metrics"):
        fast = [(e.id, dict(e)) for e in runs[True].records(stream)]
        slow = [(e.id, dict(e)) for e in runs[False].records(stream)]
        assert fast == slow, stream
    reference = evaluate.progressive_val_score(rows, model(), metric(), moment=None,
                                               delay=delay or None)
    state = runs[True].state("model")[0]
    assert state["metric"].get() == reference.get()
    assert type(state["model"]).__name__ == "CompiledModel"
    import pickle

    blob = pickle.loads(state["versions"][max(state["versions"])]["blob"])
    assert type(blob).__module__.startswith("river"), "versions stay River-readable"


def test_compiled_is_refused_with_the_reason_when_asked_for_and_impossible() -> None:
    from river import tree

    with pytest.raises(ValueError, match="cannot compile its model"):
        topology(tree.HoeffdingTreeClassifier(), metrics.Accuracy(), "testing.Phish",
                 "testing.PhishLabel", feature_fields=["https"], compiled=True)
    t = topology(tree.HoeffdingTreeClassifier(), metrics.Accuracy(), "testing.Phish",
                 "testing.PhishLabel", feature_fields=["https"])
    assert t.nodes["model"].options["compiled"] is False


def test_grouped_arguments_make_the_same_learner_as_flat_keywords() -> None:
    from doa.learner.spec import Inputs, Outputs, Pending, Versions

    rows = phishing()[:300]
    flat = topology(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                    metrics.Accuracy(), "testing.Phish", "testing.PhishLabel",
                    max_pending=500, label_wait_ms=10, metrics_every=50, keep_versions=3)
    grouped = Topology("learning", schemas=SCHEMAS)
    for name, stream in flat.streams.items():
        if name != flat.dead_letters.name:
            grouped.stream(name, schema=stream.schema)
    grouped.learner("model", model=preprocessing.StandardScaler() |
                    linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                    reads=Inputs("features", "labels"),
                    writes=Outputs("predictions", outcomes="outcomes", metrics="metrics",
                                   unmatched="unmatched", metrics_every=50),
                    versions=Versions(keep=3), pending=Pending(max=500, label_wait_ms=10))
    assert grouped.nodes["model"].spec == flat.nodes["model"].spec
    runs = [run_learner(t, rows, 7) for t in (flat, grouped)]
    assert [dict(e) for e in runs[0].records("metrics")] == \
        [dict(e) for e in runs[1].records("metrics")] != []


def test_a_group_and_one_of_its_keywords_cannot_both_be_given() -> None:
    from doa.learner.spec import Inputs

    t = Topology("learning", schemas=SCHEMAS)
    with pytest.raises(TypeError, match=r"learner 'model': join= and reads= both given"):
        t.learner("model", model=linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                  reads=Inputs("features", "labels"), join="id", predictions="predictions")
    with pytest.raises(TypeError, match=r"learner 'model': give writes= \(Outputs\) or "
                                        r"predictions="):
        t.learner("model", model=linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                  features="features", labels="labels")


def test_every_flat_keyword_belongs_to_a_group() -> None:
    import inspect

    from doa.learner.node import learner_node
    from doa.learner.spec import FLAT

    own = {"name", "model", "metric", "reads", "writes", "versions", "pending", "compiled"}
    assert set(inspect.signature(learner_node).parameters) - own == set(FLAT)
