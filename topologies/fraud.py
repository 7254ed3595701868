"""Example topology: card transactions -> per-card features -> an online model -> drift -> reset.

A source service publishes transactions and, ``LABEL_DELAY`` transactions later, whether each
was fraud. The data is River's Agrawal generator with two abrupt concept drifts at known
positions (:func:`drift_points`): the rule that makes a transaction fraudulent changes twice.

- ``featurize`` (Numba kernels, per card): the card's EW mean, variance and z-score of the
  amount, the time since its previous transaction, its transactions per second;
- ``scorer`` (River Hoeffding tree): predicts on every transaction's features, learns on them
  when the label arrives (prequential, no leakage), publishes predictions, outcomes, metrics
  and model versions, and resets its model when told of drift;
- ``watch_errors`` (River Page-Hinkley): watches the scorer's errors and publishes a
  ``doa.DriftEvent`` when the error rate rises, which the scorer reads.

Page-Hinkley watches for a rise only (``mode="up"``). ADWIN flags any change of the error
rate, including its fall when labels start to come in or a fresh model learns, so with a
reset policy it fires again and again: on 24 000 transactions (seed 7) ADWIN fired 10 times,
the first after 1 023 transactions; DDM, which also looks for a rise only, fired 329 and 124
transactions after the two drift points, Page-Hinkley 106 and 64 after them.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

from river import drift, metrics, tree
from river.datasets import synth

from doa import Stream, Topology
from doa.kernels import ewm, rate, since_previous
from doa.learner.spec import Inputs, Outputs, Versions

CARDS = 200  # card_id: one of this many cards, drawn from the seed
RATE = 2000  # transactions per second of event time (record timestamps)
# A transaction's label comes this many transactions after it: 0.5 s at RATE, more than the
# feature node lags the source in the demo (where every node shares one process).
LABEL_DELAY = 1000
CONCEPTS = (6, 0, 8)  # Agrawal classification functions: before, between, after the drifts
T0 = 1_700_000_000_000  # the first transaction's timestamp (ms); the demo moves it to now

# Every stream has one partition: the scorer reads features, labels, drift events and
# commands together (co-partitioned inputs need equal partition counts), and one global
# model learns from every card.
PARTITIONS = 1

topology = Topology("fraud", dead_letters="fraud.dlq")


def stream(name: str, schema: str, key: str | None) -> Stream:
    return topology.stream(name, schema=schema, key=key, partitions=PARTITIONS)


transactions = stream("transactions", "fraud.Transaction", key="card_id")
labels = stream("labels", "fraud.TransactionLabel", key="card_id")
card_features = stream("card_features", "fraud.CardFeatures", key="card_id")
predictions = stream("predictions", "doa.Prediction", key="key")
outcomes = stream("outcomes", "doa.Outcome", key="key")
scores = stream("metrics", "doa.Metric", key="model")
unmatched = stream("unmatched", "doa.UnmatchedLabel", key="model")
models = stream("models", "doa.ModelEvent", key="model")
commands = stream("model_commands", "doa.ModelCommand", key=None)
drifts = stream("drift", "doa.DriftEvent", key="node")

CARD_FEATURES = {
    "spend": ("amount", ewm(alpha=0.1)),  # spend_mean, spend_var, spend_zscore
    "gap": (None, since_previous()),  # gap_ms
    "velocity": (None, rate(window_ms=10_000, capacity=256)),  # velocity_per_s
}
# gap_ms is NaN on a card's first transaction: it is not among the model's features (a learner
# would leave a NaN feature out of what River sees, and say so once). The tree is at most 3
# deep: each leaf pickles to ~90 KB (a Gaussian per class and feature), so every version (a
# doa.ModelEvent record with the pickled model) stays well under the ~1 MB a record may have;
# reset on drift, it is as accurate as an unbounded tree here.
MODEL_FEATURES = ("amount", "salary", "commission", "age", "elevel", "car", "zipcode",
                  "hvalue", "hyears", "spend_zscore", "velocity_per_s")

topology.kernel("featurize", reads=transactions, writes=card_features, key="card_id",
                time="ts", features=CARD_FEATURES)

topology.learner(
    "scorer", model=tree.HoeffdingTreeClassifier(grace_period=100, max_depth=3),
    metric=metrics.Accuracy(),
    reads=Inputs(card_features, labels, join="txn_id", label="is_fraud", key="card_id",
                 feature_fields=MODEL_FEATURES),
    writes=Outputs(predictions, outcomes=outcomes, metrics=scores, unmatched=unmatched,
                   models=models, metrics_every=500),
    versions=Versions(every=1000, keep=5, control=commands, drift=drifts, on_drift="reset"))

topology.detector("watch_errors", reads=outcomes, writes=drifts, signal="error",
                  detector=drift.PageHinkley(mode="up", threshold=40),
                  model_version_field="model_version")


# -- the source service -----------------------------------------------------------------------
def drift_points(n: int) -> tuple[int, int]:
    """Where the concept changes in a source of ``n`` transactions: transaction indexes.

    Each change is the middle of a transition about ``width(position)`` transactions wide
    (River's ``ConceptDriftStream`` cannot be narrower, see :func:`width`).
    """
    return n // 3, 2 * n // 3


def width(position: int) -> int:
    """The narrowest transition River's ``ConceptDriftStream`` takes at ``position``.

    Its drift probability is ``1 / (1 + exp(4 (position - i) / width))``, which overflows a
    float for ``4 position / width`` above ~709; ``position // 150`` keeps it below 600. At
    30 000 transactions the transitions are 66 wide: 88% of the new concept 33 after the
    point, 99.97% 133 after it.
    """
    return max(1, position // 150)


def timestamp(i: int) -> int:
    """The event time of transaction ``i``, in ms."""
    return T0 + i * 1000 // RATE


def samples(n: int, seed: int = 7) -> Iterator[tuple[dict[str, Any], bool]]:
    """Agrawal samples ``(x, y)`` with concept drifts at :func:`drift_points`."""
    p1, p2 = drift_points(n)
    data = synth.ConceptDriftStream(
        stream=synth.Agrawal(classification_function=CONCEPTS[0], seed=seed),
        drift_stream=synth.ConceptDriftStream(
            stream=synth.Agrawal(classification_function=CONCEPTS[1], seed=seed + 1),
            drift_stream=synth.Agrawal(classification_function=CONCEPTS[2], seed=seed + 2),
            position=p2 - p1, width=width(p2 - p1), seed=seed + 3),
        position=p1, width=width(p1), seed=seed + 4)
    for i, (x, y) in enumerate(data):
        if i >= n:
            return
        yield x, bool(y)


def demo_source(n: int, seed: int = 7) -> Iterator[tuple[str, dict[str, Any], int]]:
    """``n`` transactions and their labels as ``(stream, record, timestamp_ms)``.

    In publication order: transaction ``i`` at :func:`timestamp` ``(i)``, its label at the
    timestamp of transaction ``i + LABEL_DELAY`` (published just before that transaction:
    a label and features with the same timestamp go label first), the last labels after the
    last transaction.
    """
    cards = random.Random(seed)
    delay_ms = timestamp(LABEL_DELAY) - T0
    waiting: list[tuple[int, dict[str, Any]]] = []  # (label time, label), in time order
    for i, (x, y) in enumerate(samples(n, seed)):
        ts = timestamp(i)
        while waiting and waiting[0][0] <= ts:
            due, label = waiting.pop(0)
            yield "labels", label, due
        card = f"card-{cards.randrange(CARDS):03d}"
        yield "transactions", {
            "txn_id": i, "card_id": card, "ts": ts, "amount": float(x["loan"]),
            "salary": float(x["salary"]), "commission": float(x["commission"]),
            "age": int(x["age"]), "elevel": int(x["elevel"]), "car": int(x["car"]),
            "zipcode": int(x["zipcode"]), "hvalue": float(x["hvalue"]),
            "hyears": int(x["hyears"]),
        }, ts
        waiting.append((ts + delay_ms, {"txn_id": i, "card_id": card, "is_fraud": y}))
    for due, label in waiting:
        yield "labels", label, due
