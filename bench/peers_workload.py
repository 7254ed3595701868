"""The peers benchmark's workload: schemas, seeded input, the learner step, doa topologies.

Input: ``txns`` (4 partitions, keyed by ``account``, 100 accounts), Avro single-object
encoded. The learner workload, per record: decode -> per-account exponentially weighted
mean/variance of ``amount`` and its z-score (alpha 0.05, as ``doa.kernels.ewm``) -> River
``StandardScaler | LogisticRegression`` predict_proba_one, then learn_one on the record's
label -> encode a ``scored`` record -> produce it keyed by account.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

PARTITIONS = 4
ACCOUNTS = 100
ALPHA = 0.05
BASE_MS = 1_700_000_000_000

TXN = {"type": "record", "name": "Txn", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "amount", "type": "double"}, {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"}, {"name": "x3", "type": "double"},
    {"name": "label", "type": "boolean"}]}
SCORED = {"type": "record", "name": "Scored", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "zscore", "type": "double"}, {"name": "score", "type": "double"}]}
FEATURES = {"type": "record", "name": "Features", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "amount", "type": "double"}, {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"}, {"name": "x3", "type": "double"},
    {"name": "amount_mean", "type": "double"}, {"name": "amount_var", "type": "double"},
    {"name": "amount_zscore", "type": "double"}]}
LABEL = {"type": "record", "name": "Label", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "label", "type": "boolean"}]}
FEATURE_FIELDS = ["amount", "amount_zscore", "x1", "x2", "x3"]


def write_schemas(directory: Path) -> Path:
    """Write the workload's .avsc files into ``directory``; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    for schema in (TXN, SCORED, FEATURES, LABEL):
        (directory / f"{schema['name'].lower()}.avsc").write_text(json.dumps(schema))
    return directory


def txns(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """``n`` seeded transactions; the label depends on the features (learnable)."""
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        x1, x2, x3 = rnd.gauss(0, 1), rnd.gauss(0, 1), rnd.random()
        amount = abs(rnd.gauss(50, 20)) + (200 if rnd.random() < 0.02 else 0)
        out.append({"id": i, "account": f"a{rnd.randrange(ACCOUNTS):03d}", "amount": amount,
                    "x1": x1, "x2": x2, "x3": x3,
                    "label": x1 + 0.5 * x2 + amount / 100 + rnd.gauss(0, 0.5) > 1.0})
    return out


def new_model() -> Any:
    from river import linear_model, preprocessing

    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


class Learner:
    """The hand-written learner state: EW stats per account and one River model."""

    def __init__(self) -> None:
        self.stats: dict[str, list[float]] = {}
        self.model = new_model()

    def step(self, r: dict[str, Any]) -> dict[str, Any]:
        """One record: z-score, predict, learn; the ``scored`` record."""
        s = self.stats.get(r["account"])
        amount = r["amount"]
        if s is None:
            s = self.stats[r["account"]] = [amount, 0.0]
            z = 0.0
        else:
            mean, var = s
            z = (amount - mean) / math.sqrt(var) if var > 0 else 0.0
            diff = amount - mean
            incr = ALPHA * diff
            s[0] = mean + incr
            s[1] = (1 - ALPHA) * (var + diff * incr)
        x = {"amount": amount, "amount_zscore": z, "x1": r["x1"], "x2": r["x2"], "x3": r["x3"]}
        score = self.model.predict_proba_one(x).get(True, 0.0)
        self.model.learn_one(x, r["label"])
        return {"id": r["id"], "account": r["account"], "zscore": z, "score": float(score)}


def learner_state() -> Learner:
    return Learner()


def custom_step(state: Learner, batch: list[Any]) -> tuple[Learner, list[Any]]:
    """The doa custom node's step: the hand loop's work on a batch."""
    step = state.step
    return state, [(e, step(e)) for e in batch]


def passthrough_step(state: None, batch: list[Any]) -> tuple[None, list[Any]]:
    return state, [(e, e) for e in batch]


def topology(kind: str, name: str, schemas: Path, compiled: bool = False) -> Any:
    """The doa topology of variant ``kind`` (passthrough, custom, pair), named ``name`` (its
    groups, state and output topics are its own; every variant reads ``txns``)."""
    from doa import Topology

    t = Topology(name, schemas=str(schemas), dead_letters=f"{name}.dlq")
    src = t.stream("txns", schema="peers.Txn", key="account", partitions=PARTITIONS)
    if kind == "passthrough":
        out = t.stream(f"{name}.out", schema="peers.Txn", key="account", partitions=PARTITIONS)
        t.node(reads=src, writes=out, state=None, name="forward")(passthrough_step)
    elif kind == "custom":
        out = t.stream(f"{name}.out", schema="peers.Scored", key="account",
                       partitions=PARTITIONS)
        t.node(reads=src, writes=out, state=learner_state, name="learn")(custom_step)
    elif kind == "pair":
        from river import metrics

        from doa.kernels import ewm

        feats = t.stream(f"{name}.features", schema="peers.Features", key="account",
                         partitions=PARTITIONS)
        labels = t.stream("labels", schema="peers.Label", key="account", partitions=PARTITIONS)
        t.kernel("features", reads=src, writes=feats, key="account",
                 features={"amount": ("amount", ewm(ALPHA))},
                 select=["id", "account", "amount", "x1", "x2", "x3"])
        t.learner("model", features=feats, labels=labels,
                  predictions=t.stream(f"{name}.predictions", schema="doa.Prediction",
                                       partitions=PARTITIONS),
                  model=new_model(), metric=metrics.Accuracy(), join="id", label="label",
                  feature_fields=FEATURE_FIELDS, compiled=compiled)
    else:
        raise ValueError(kind)
    return t
