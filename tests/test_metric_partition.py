"""A learner (and a model node) keeps its state per partition, and each writes its own
metric records to one stream: each record says its partition, so the series can be told
apart (walk 7: with 2 partitions, the learners' metrics interleaved with nothing to tell
them by). Checked against a plain per-partition count of the outcomes."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from river import datasets, linear_model, metrics

from doa import Topology
from doa.testing import Harness
from tests.test_learner import SCHEMAS

EVERY = 5


def _run(learner: bool) -> Harness:
    t = Topology("learning", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                         ("metrics", "doa.Metric")):
        t.stream(name, schema=schema, partitions=2)
    if learner:
        t.learner("model", features="features", labels="labels", predictions="predictions",
                  outcomes="outcomes", metrics="metrics", metrics_every=EVERY,
                  model=linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                  join="id", label="label")
    else:
        from doa.model.labels import Labels
        from tests.test_model_versions import Scaled

        t.model("model", reads="features", writes="predictions", model=Scaled(1.0),
                features=["age_of_domain", "https"], join="id",
                labels=Labels("labels", label="label", outcomes="outcomes",
                              metrics="metrics", every=EVERY))
    h = Harness(t, batch_size=7)
    rows = list(datasets.Phishing().take(60))
    for i, (x, y) in enumerate(rows):
        h.publish("features", [{"id": i, **x}], partition=i % 2, timestamps=[1_000 + i])
        h.publish("labels", [{"id": i, "label": y}], partition=i % 2, timestamps=[1_000 + i])
    h.run()
    return h


def test_each_metric_record_names_its_partition_and_equals_that_partitions_outcomes() -> None:
    for learner in (True, False):
        h = _run(learner)
        outcomes: dict[int, list[Any]] = defaultdict(list)
        for o in h.records("outcomes"):
            outcomes[int(o["join"]) % 2].append(o)
        records = h.records("metrics")
        assert {m["partition"] for m in records} == {0, 1}, learner
        for p in (0, 1):
            mine = [m for m in records if m["partition"] == p]
            assert [m["labels"] for m in mine] == list(range(EVERY, 31, EVERY)), (learner, p)
            for m in mine:  # the accuracy of that partition's first `labels` outcomes
                seen = outcomes[p][:m["labels"]]
                assert m["value"] == sum(bool(o["correct"]) for o in seen) / len(seen)
