"""The peers benchmark's workload: schemas, seeded input, the learner step, doa topologies.

Input: ``txns`` (4 partitions, keyed by ``account``, 100 accounts), Avro single-object
encoded. The learner workload, per record: decode -> per-account exponentially weighted
mean/variance of ``amount`` and its z-score (alpha 0.05, as ``doa.kernels.ewm``) -> River
``StandardScaler | LogisticRegression`` predict_proba_one, then learn_one on the record's
label -> encode a ``scored`` record -> produce it keyed by account. The compiled variants run
the same model as :mod:`doa.compiled` (numerically equal to River), a batch per kernel call.
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

TXN: dict[str, Any] = {"type": "record", "name": "Txn", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "amount", "type": "double"}, {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"}, {"name": "x3", "type": "double"},
    {"name": "label", "type": "boolean"}]}
SCORED: dict[str, Any] = {"type": "record", "name": "Scored", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "zscore", "type": "double"}, {"name": "score", "type": "double"}]}
FEATURES: dict[str, Any] = {"type": "record", "name": "Features", "namespace": "peers", "fields": [
    {"name": "id", "type": "long"}, {"name": "account", "type": "string"},
    {"name": "amount", "type": "double"}, {"name": "x1", "type": "double"},
    {"name": "x2", "type": "double"}, {"name": "x3", "type": "double"},
    {"name": "amount_mean", "type": "double"}, {"name": "amount_var", "type": "double"},
    {"name": "amount_zscore", "type": "double"}]}
LABEL: dict[str, Any] = {"type": "record", "name": "Label", "namespace": "peers", "fields": [
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

    def zscore(self, account: str, amount: float) -> float:
        """The EW z-score of ``amount`` before it updates the account's mean/variance."""
        s = self.stats.get(account)
        if s is None:
            self.stats[account] = [amount, 0.0]
            return 0.0
        mean, var = s
        diff = amount - mean
        incr = ALPHA * diff
        s[0] = mean + incr
        s[1] = (1 - ALPHA) * (var + diff * incr)
        return diff / math.sqrt(var) if var > 0 else 0.0

    def step(self, r: dict[str, Any]) -> dict[str, Any]:
        """One record: z-score, predict, learn; the ``scored`` record."""
        amount = r["amount"]
        z = self.zscore(r["account"], amount)
        x = {"amount": amount, "amount_zscore": z, "x1": r["x1"], "x2": r["x2"], "x3": r["x3"]}
        score = self.model.predict_proba_one(x).get(True, 0.0)
        self.model.learn_one(x, r["label"])
        return {"id": r["id"], "account": r["account"], "zscore": z, "score": float(score)}


class CompiledLearner(Learner):
    """:class:`Learner` with doa's compiled model: a batch's predict/learn pairs in one call."""

    def __init__(self) -> None:
        from doa.compiled import compile_model, warm_up

        warm_up()  # the kernels' compilation is start-up, as the learner node's start() does
        self.stats = {}
        self.model = compile_model(new_model(), features=FEATURE_FIELDS)

    def steps(self, rs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """:meth:`Learner.step` on every record of ``rs``, in order (prequential)."""
        import numpy as np

        from doa.compiled import LEARN, PREDICT

        n = len(rs)
        if not n:
            return []
        zs = [self.zscore(r["account"], r["amount"]) for r in rs]
        rows = np.array([(r["amount"], z, r["x1"], r["x2"], r["x3"])
                         for r, z in zip(rs, zs, strict=True)], dtype=np.float64)
        kinds = np.tile(np.array([PREDICT, LEARN], dtype=np.int8), n)
        y = np.empty(2 * n)
        y[0::2] = np.nan
        y[1::2] = [float(r["label"]) for r in rs]
        scores = self.model.run_ops(kinds, np.repeat(rows, 2, axis=0), y)[0::2, 0]
        return [{"id": r["id"], "account": r["account"], "zscore": z, "score": float(p)}
                for r, z, p in zip(rs, zs, scores.tolist(), strict=True)]

    def step(self, r: dict[str, Any]) -> dict[str, Any]:
        return self.steps([r])[0]


def learner_state() -> Learner:
    return Learner()


def compiled_learner_state() -> CompiledLearner:
    return CompiledLearner()


def custom_step(state: Learner, batch: list[Any]) -> tuple[Learner, list[Any]]:
    """The doa custom node's step: the hand loop's work on a batch."""
    step = state.step
    return state, [(e, step(e)) for e in batch]


def compiled_step(state: CompiledLearner, batch: list[Any]) -> tuple[CompiledLearner, list[Any]]:
    """The custom node's step with the compiled model: one kernel call per batch."""
    return state, list(zip(batch, state.steps(batch), strict=True))


def passthrough_step(state: None, batch: list[Any]) -> tuple[None, list[Any]]:
    return state, [(e, e) for e in batch]


def topology(kind: str, name: str, schemas: Path, compiled: bool = False,
             inputs: str = "") -> Any:
    """The doa topology of variant ``kind`` (passthrough, custom, pair), named ``name`` (its
    groups, state and output topics are its own; every variant reads ``{inputs}txns``, and
    the pair ``{inputs}labels``). ``compiled``: the custom node's or the learner's model is
    doa's compiled one."""
    from doa import Topology

    t = Topology(name, schemas=str(schemas), dead_letters=f"{name}.dlq")
    src = t.stream(f"{inputs}txns", schema="peers.Txn", key="account", partitions=PARTITIONS)
    if kind == "passthrough":
        out = t.stream(f"{name}.out", schema="peers.Txn", key="account", partitions=PARTITIONS)
        t.node(reads=src, writes=out, state=None, name="forward")(passthrough_step)
    elif kind == "custom":
        out = t.stream(f"{name}.out", schema="peers.Scored", key="account",
                       partitions=PARTITIONS)
        t.node(reads=src, writes=out, name="learn",
               state=compiled_learner_state if compiled else learner_state)(
            compiled_step if compiled else custom_step)
    elif kind == "pair":
        from river import metrics

        from doa.kernels import ewm

        feats = t.stream(f"{name}.features", schema="peers.Features", key="account",
                         partitions=PARTITIONS)
        labels = t.stream(f"{inputs}labels", schema="peers.Label", key="account",
                          partitions=PARTITIONS)
        t.kernel("features", reads=src, writes=feats, key="account",
                 features={"amount": ("amount", ewm(ALPHA))},
                 select=["id", "account", "amount", "x1", "x2", "x3"])
        t.learner("model", features=feats, labels=labels,
                  predictions=t.stream(f"{name}.predictions", schema="doa.Prediction",
                                       partitions=PARTITIONS),
                  model=new_model(), metric=metrics.Accuracy(),  # type: ignore[no-untyped-call]
                  join="id", label="label", feature_fields=FEATURE_FIELDS, compiled=compiled)
    else:
        raise ValueError(kind)
    return t


def output_stream(kind: str, name: str) -> str:
    """The stream whose records are variant ``kind``'s final outputs (one per input)."""
    return f"{name}.predictions" if kind == "pair" else f"{name}.out"
