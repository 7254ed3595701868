"""Test topology: a node preparing features and a River learner after it, chained when they run
in one process (the prep node hands its acknowledged outputs to the learner in memory)."""

from __future__ import annotations

from typing import Any

from river import linear_model, metrics, preprocessing

from doa import Topology
from doa.events import Event


def prep(state: int, batch: list[Event]) -> tuple[int, list[tuple[Event, dict[str, Any]]]]:
    """Forward each row unchanged (the learner's result then equals River's on the rows), and
    count them."""
    return state + len(batch), [(e, dict(e)) for e in batch]


def build(partitions: int, schemas: Any = "../schemas", metrics_every: int = 100) -> Topology:
    """The topology, its streams with ``partitions`` partitions (keyed by id)."""
    t = Topology("chained", schemas=schemas)
    for name, schema in (("raw", "testing.Phish"), ("features", "testing.Phish"),
                         ("labels", "testing.PhishLabel")):
        t.stream(name, schema=schema, partitions=partitions, key="id")
    t.stream("predictions", schema="doa.Prediction")
    t.stream("outcomes", schema="doa.Outcome")
    t.stream("metrics", schema="doa.Metric")
    t.stream("unmatched", schema="doa.UnmatchedLabel")
    t.node(reads="raw", writes="features", state=lambda: 0)(prep)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              outcomes="outcomes", metrics="metrics", unmatched="unmatched",
              model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
              metric=metrics.Accuracy(), join="id", label="label", metrics_every=metrics_every)
    return t


topology = build(2)
