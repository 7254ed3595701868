"""Test topology: a River learner on the Phishing dataset (features + delayed labels)."""

from __future__ import annotations

from river import linear_model, metrics, preprocessing

from doa import Topology

topology = Topology("learning", schemas="../schemas")
features = topology.stream("features", schema="testing.Phish")
labels = topology.stream("labels", schema="testing.PhishLabel")
predictions = topology.stream("predictions", schema="doa.Prediction")
outcomes = topology.stream("outcomes", schema="doa.Outcome")
metric_stream = topology.stream("metrics", schema="doa.Metric")
unmatched = topology.stream("unmatched", schema="doa.UnmatchedLabel")

topology.learner("model", features=features, labels=labels, predictions=predictions,
                 outcomes=outcomes, metrics=metric_stream, unmatched=unmatched,
                 model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metric=metrics.Accuracy(), join="id", label="label", metrics_every=100)
