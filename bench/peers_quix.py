"""Quix Streams' variants of the peers benchmark (run by :mod:`bench.peers_run`).

``quix-learner`` does the learner workload in one app, as the hand-written loops do it.
``quix-pair`` is the kernel -> learner topology as a Quix user would write it, the work doa's
``doa-pair`` does: a features stage (``txns`` -> per-account EW mean, variance and z-score of
``amount`` -> ``NAME.features``) and a learner stage that predicts on each features record
(-> ``NAME.predictions``) and learns once the record's label has come on ``labels`` (joined by
``id``, whichever comes first). Both stages are dataframes of one application, in one
process, as doa's pair runs its two nodes. State is kept in Python objects, as the
``quix-learner`` variant keeps its model (no changelog topics): neither survives a crash,
where doa's nodes snapshot theirs; doa's predictions also carry their feature map and lineage.
"""

from __future__ import annotations

import argparse
import tempfile
from typing import Any

from bench import peers_workload as w
from bench.peers_base import Clock, codec, learner_codec


def application(a: argparse.Namespace, state: str) -> Any:
    """A Quix application in its own group, tuned as ``--linger-ms``/``--fetch-max-wait-ms``
    say (the clients' defaults otherwise)."""
    from quixstreams import Application

    # a session timeout as the confluent-kafka loop's: with librdkafka's 45 s default a fresh
    # group's first records came ~27 s after start on tansu (the latency mode waits for them);
    # state in a temporary directory, not ./state
    consumer: dict[str, Any] = {"session.timeout.ms": 6000}
    producer: dict[str, Any] = {}
    if a.fetch_max_wait_ms is not None:
        consumer["fetch.wait.max.ms"] = a.fetch_max_wait_ms
    if a.linger_ms is not None:
        producer["linger.ms"] = a.linger_ms
    return Application(broker_address=a.broker, consumer_group=a.name,
                       auto_offset_reset="earliest", loglevel="WARNING",
                       use_changelog_topics=False, consumer_poll_timeout=0.1,
                       consumer_extra_config=consumer, producer_extra_config=producer,
                       state_dir=state)


def raw(app: Any, name: str) -> Any:
    """A topic of bytes keys and values."""
    return app.topic(name, key_deserializer="bytes", value_deserializer="bytes",
                     key_serializer="bytes", value_serializer="bytes")


def quix_learner(a: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="peers-quix-") as state:
        app = application(a, state)
        decode, encode = learner_codec()
        learner = w.Learner()
        clock, count = Clock(), [0]

        def work(value: bytes) -> bytes:
            clock.first()
            encoded: bytes = encode(learner.step(decode(value)))
            count[0] += 1
            if a.records and count[0] >= a.records:
                clock.end()
                app.stop()
            return encoded

        # to_topic keeps the input's timestamp
        app.dataframe(raw(app, f"{a.inputs}txns")).apply(work).to_topic(raw(app, f"{a.name}.out"))
        app.run()
    return clock.result(count[0], count[0])


class Features(w.Learner):
    """The features stage: per-account EW mean and variance of ``amount`` and its z-score
    before the record updates them (as ``doa.kernels.ewm``; the learner's own z-score)."""

    def __init__(self) -> None:
        self.stats = {}

    def __call__(self, r: dict[str, Any]) -> dict[str, Any]:
        z = self.zscore(r["account"], r["amount"])
        mean, var = self.stats[r["account"]]
        return {"id": r["id"], "account": r["account"], "amount": r["amount"], "x1": r["x1"],
                "x2": r["x2"], "x3": r["x3"], "amount_mean": mean, "amount_var": var,
                "amount_zscore": z}


class Scorer:
    """The learner stage: predict on a features record, learn once its label is here too."""

    def __init__(self) -> None:
        self.model = w.new_model()
        self.waiting: dict[int, dict[str, float]] = {}  # id -> features without a label yet
        self.labels: dict[int, bool] = {}  # id -> a label that came before its features

    def features(self, r: dict[str, Any]) -> dict[str, Any]:
        x = {f: r[f] for f in w.FEATURE_FIELDS}
        score = self.model.predict_proba_one(x).get(True, 0.0)
        label = self.labels.pop(r["id"], None)
        if label is None:
            self.waiting[r["id"]] = x
        else:
            self.model.learn_one(x, label)
        return {"id": r["id"], "account": r["account"], "zscore": r["amount_zscore"],
                "score": float(score)}

    def label(self, r: dict[str, Any]) -> None:
        x = self.waiting.pop(r["id"], None)
        if x is None:
            self.labels[r["id"]] = r["label"]
        else:
            self.model.learn_one(x, r["label"])


def quix_pair(a: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from doa.cluster.admin import TopicSpec, ensure_topics

    features_topic, predictions_topic = f"{a.name}.features", f"{a.name}.predictions"
    asyncio.run(ensure_topics(a.broker, [TopicSpec(features_topic, w.PARTITIONS),
                                         TopicSpec(predictions_topic, w.PARTITIONS)]))
    read_txn, write_features = codec(w.TXN, w.FEATURES)
    read_features, write_scored = codec(w.FEATURES, w.SCORED)
    read_label, _ = codec(w.LABEL, w.LABEL)
    features, scorer = Features(), Scorer()
    clock, seen = Clock(), [0, 0]  # learner stage: features, labels

    with tempfile.TemporaryDirectory(prefix="peers-quix-") as state:
        app = application(a, state)

        def count(i: int) -> None:
            seen[i] += 1
            if a.records and sum(seen) >= 2 * a.records:
                clock.end()
                app.stop()

        def kernel(value: bytes) -> bytes:
            clock.first()
            encoded: bytes = write_features(features(read_txn(value)))
            return encoded

        def predict(value: bytes) -> bytes:
            encoded: bytes = write_scored(scorer.features(read_features(value)))
            count(0)
            return encoded

        def learn(value: bytes) -> None:
            scorer.label(read_label(value))
            count(1)

        feats = raw(app, features_topic)
        app.dataframe(raw(app, f"{a.inputs}txns")).apply(kernel).to_topic(feats)
        app.dataframe(feats).apply(predict).to_topic(raw(app, predictions_topic))
        app.dataframe(raw(app, f"{a.inputs}labels")).update(learn)
        app.run()
    result = clock.result(a.records or seen[0], seen[0])
    result["unjoined"] = len(scorer.waiting) + len(scorer.labels)  # 0: every label learned
    return result
