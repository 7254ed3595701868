"""A challenger learner in the in-memory harness: a second River model learning on the same
stream, its predictions on the shadow stream only, both scored on the same labels, and the
Promote policy (or ``doa model promote``) deciding.

The reference is a plain loop over River's Phishing data in the order the runtime merges it
(labels first on ties), with the two River models and metrics side by side; and, for the
live model, ``river.evaluate.progressive_val_score`` as in tests/test_learner.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from river import dummy, evaluate, linear_model, metrics, preprocessing

from doa import Promote, Topology
from doa.testing import Harness
from tests.test_learner import SCHEMAS, phishing

DELAY = 25
AFTER = 300
N = 800


def good() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def bad() -> Any:
    return dummy.PriorClassifier()  # always the majority class: worse by construction


def topology(live: Any, challenger: Any, promote: Promote | None) -> Topology:
    t = Topology("race", schemas=SCHEMAS)
    t.stream("features", schema="testing.Phish")
    t.stream("labels", schema="testing.PhishLabel")
    for name, schema in (("predictions", "doa.Prediction"), ("shadow", "doa.Prediction"),
                         ("models", "doa.ModelEvent"), ("metrics", "doa.Metric"),
                         ("control", "doa.ModelCommand")):
        t.stream(name, schema=schema)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              shadow="shadow", models="models", metrics="metrics", control="control",
              model=live, metric=metrics.Accuracy(), join="id", label="label",
              challenger=challenger, promote_when=promote, metrics_every=100)
    return t


def run(live: Any, challenger: Any, promote: Promote | None, batch_size: int = 64,
        n: int = N) -> Harness:
    rows = phishing()[:n]
    h = Harness(topology(live, challenger, promote), batch_size=batch_size)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=range(n))
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=[i + DELAY for i in range(n)])
    h.run()
    return h


def reference(live: Any, challenger: Any, promote: Promote, n: int = N) -> dict[str, Any]:
    """A plain loop: each model's predictions by id, and when (which label) it decided."""
    rows = phishing()[:n]
    merged = sorted([(i, 1, i) for i in range(n)] + [(i + DELAY, 0, i) for i in range(n)])
    versions = {"live": 1}
    out: dict[str, Any] = {"live": {}, "shadow": {}, "decided": None}
    race, mine, count = metrics.Accuracy(), metrics.Accuracy(), 0
    pending: dict[int, tuple[Any, Any]] = {}
    for ts, kind, i in merged:
        x, y = rows[i]
        if kind == 1:
            p = live.predict_one(x)
            out["live"][i] = (versions["live"], p)
            s = None if challenger is None else challenger.predict_one(x)
            if challenger is not None:
                out["shadow"][i] = s
            pending[i] = (p, s)
            continue
        p, s = pending.pop(i)
        live.learn_one(x, y)
        if challenger is None:
            continue
        challenger.learn_one(x, y)
        if s is None and i not in out["shadow"]:
            continue
        for metric, pred in ((race, p), (mine, s)):
            if pred is not None:  # as River's progressive validation: no prediction yet
                metric.update(y, pred)
        count += 1
        if count == promote.after_labels:
            better = promote.beats(mine, live=race.get(), candidate=mine.get())
            out["decided"] = (ts, "promoted" if better else "rejected", race.get(), mine.get())
            if better:
                live, versions["live"] = challenger, 2
            challenger = None
    return out


@pytest.mark.parametrize("batch_size", [1, 37, 5000])
def test_a_better_challenger_is_promoted_after_the_stated_labels(batch_size: int) -> None:
    policy = Promote(margin=0.05, after_labels=AFTER)
    h = run(bad(), good(), policy, batch_size)
    ref = reference(bad(), good(), policy)
    ts, action, live_value, challenger_value = ref["decided"]
    assert action == "promoted" and challenger_value - live_value > 0.05
    [candidate, promoted] = h.records("models")
    assert (candidate["action"], candidate["version"], candidate["from_version"]) == \
        ("candidate", 2, 1)
    assert (promoted["action"], promoted["version"], promoted["from_version"]) == \
        ("promoted", 2, 1)
    # the AFTER-th shared label is record AFTER-1's, at AFTER-1+DELAY
    assert promoted["labels"] == AFTER and promoted.timestamp == ts == AFTER - 1 + DELAY
    assert f"{challenger_value:.4f} (v2) vs {live_value:.4f} (v1) over {AFTER}" in \
        promoted["reason"]
    live = {int(r["join"]): (r["model_version"], r["prediction"])
            for r in h.records("predictions")}
    assert live == ref["live"]  # each record by the model live then, as the plain loop
    assert {v for v, _ in live.values()} == {1, 2}
    shadow = {int(r["join"]): r["prediction"] for r in h.records("shadow")}
    assert shadow == ref["shadow"]
    assert {r["model_version"] for r in h.records("shadow")} == {2}
    state = h.state("model")[0]
    assert "challenger" not in state and state["version"] == 2 and 2 in state["versions"]


def test_a_worse_challenger_is_rejected_and_the_live_metric_is_river_s() -> None:
    policy = Promote(margin=0.0, after_labels=AFTER)
    h = run(good(), bad(), policy)
    ref = reference(good(), bad(), policy)
    assert ref["decided"][1] == "rejected"
    assert [e["action"] for e in h.records("models")] == ["candidate", "rejected"]
    assert {r["model_version"] for r in h.records("predictions")} == {1}
    assert len(h.records("shadow")) == len(ref["shadow"]) < N
    rows = phishing()[:N]
    river = evaluate.progressive_val_score(rows, good(), metrics.Accuracy(), moment=None,
                                           delay=DELAY)
    assert h.state("model")[0]["metric"].get() == pytest.approx(river.get(), abs=1e-12, rel=0)


def test_without_a_policy_the_challenger_waits_for_doa_model_promote() -> None:
    h = run(good(), bad(), None)
    rows = phishing()[:N]
    river = evaluate.progressive_val_score(rows, good(), metrics.Accuracy(), moment=None,
                                           delay=DELAY)
    state = h.state("model")[0]
    assert state["metric"].get() == pytest.approx(river.get(), abs=1e-12, rel=0)
    assert state["challenger"]["labels"] == N
    prior = evaluate.progressive_val_score(rows, bad(), metrics.Accuracy(), moment=None,
                                           delay=DELAY)
    last = {m["model_version"]: m for m in h.records("metrics")}
    assert last[2]["labels"] == last[1]["labels"] == N
    assert last[2]["value"] == pytest.approx(prior.get(), abs=1e-12, rel=0)
    assert last[1]["value"] == pytest.approx(river.get(), abs=1e-12, rel=0)
    # the operator promotes it (doa model promote: a command on the control stream)
    h.publish("control", [{"command": "promote", "version": 0, "reason": "by hand"}],
              timestamps=[N + DELAY])
    h.publish("features", [{"id": N + i, **x} for i, (x, _) in enumerate(rows[:5])],
              timestamps=range(N + DELAY + 1, N + DELAY + 6))
    h.run()
    promoted = h.records("models")[-1]
    assert (promoted["action"], promoted["version"], promoted["reason"]) == \
        ("promoted", 2, "by hand")
    assert [r["model_version"] for r in h.records("predictions")][-5:] == [2] * 5
    assert [r["prediction"] for r in h.records("predictions")][-5:] == \
        [last_prior(rows)] * 5


def last_prior(rows: list[tuple[dict[str, float], bool]]) -> bool:
    model = bad()
    for x, y in rows:
        model.learn_one(x, y)
    return bool(model.predict_one(rows[0][0]))


def test_a_challenger_of_another_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="not the same kind"):
        topology(good(), linear_model.LinearRegression(), None)
    with pytest.raises(ValueError, match="give challenger= too"):
        topology(good(), None, Promote())


def test_a_compiled_live_learner_races_a_river_challenger() -> None:
    """The live model runs as a Numba kernel, the challenger as River: every prediction is
    the plain loop's, and the promoted challenger runs compiled in turn."""
    rows = phishing()[:N]
    t = Topology("race", schemas=SCHEMAS)
    t.stream("features", schema="testing.Phish")
    t.stream("labels", schema="testing.PhishLabel")
    t.stream("predictions", schema="doa.Prediction")
    t.stream("models", schema="doa.ModelEvent")
    node = t.learner("model", features="features", labels="labels", predictions="predictions",
                     models="models", model=good(), metric=metrics.Accuracy(),
                     join="id", label="label", feature_fields=list(rows[0][0]),
                     challenger=preprocessing.StandardScaler() | linear_model.LogisticRegression(
                         l2=0.1), promote_when=Promote(margin=0.0, after_labels=AFTER))
    assert node.spec.compiled  # type: ignore[attr-defined]
    h = Harness(t, batch_size=50)
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=range(N))
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=[i + DELAY for i in range(N)])
    h.run()
    ref = reference(good(), preprocessing.StandardScaler() | linear_model.LogisticRegression(
        l2=0.1), Promote(margin=0.0, after_labels=AFTER))
    assert ref["decided"][1] == "promoted"  # by a hair: 0.8067 against 0.8033
    assert [e["action"] for e in h.records("models")] == ["candidate", "promoted"]
    live = {int(r["join"]): (r["model_version"], r["prediction"])
            for r in h.records("predictions")}
    assert live == ref["live"]
    state = h.state("model")[0]
    assert type(state["model"]).__name__ == "CompiledModel"
