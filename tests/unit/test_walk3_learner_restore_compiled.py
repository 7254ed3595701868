"""A learner that runs compiled now takes over a River model restored from its snapshot.

Adding ``feature_fields=`` to a running learner (or dropping ``compiled=False``) makes a
supported model run compiled; its snapshot still held the River object, which the compiled
path called ``rows`` on: every record after the restart was a dead letter
(``AttributeError: 'Pipeline' object has no attribute 'rows'``). The restored model is now
compiled on its first step with its learned state, so the restarted learner predicts exactly
what River's own model, restored from the same snapshot, predicts; the reverse (a compiled
state restored where River runs) gives River's own object back.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from river import anomaly, datasets, linear_model, metrics, preprocessing

from doa import Topology
from doa.testing import Harness

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FIELDS = ("empty_server_form_handler", "popup_window", "https", "request_from_other_domain",
          "anchor_from_other_domain", "is_popular", "long_url", "age_of_domain")
N = 300


def rows() -> list[tuple[dict[str, float], bool]]:
    return [({k: float(v) for k, v in x.items()}, bool(y))
            for x, y in datasets.Phishing()][:2 * N]


def topology(model: Any, metric: Any, **options: Any) -> Topology:
    t = Topology("restored", schemas=SCHEMAS)
    t.stream("features", schema="testing.Phish")
    t.stream("labels", schema="testing.PhishLabel")
    t.stream("predictions", schema="doa.Prediction")
    t.learner("model", features="features", labels="labels", predictions="predictions",
              model=model, metric=metric, join="id", label="label", **options)
    return t


def run(t: Topology, part: list[tuple[dict[str, float], bool]], first: int,
        state: Any = None) -> Harness:
    """Features ``first``.. at their index's ms, each label 3 ms later; from ``state`` (a
    snapshot's pickle, as a restart restores it) when given."""
    h = Harness(t)
    if state is not None:
        h._states["model"][0] = pickle.loads(state)  # what a restart restores
    ids = range(first, first + len(part))
    h.publish("features", [{"id": i, **x} for i, (x, _) in zip(ids, part, strict=True)],
              timestamps=ids, partition=0)
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in zip(ids, part, strict=True)],
              timestamps=[i + 3 for i in ids], partition=0)
    h.run()
    return h


def scores(h: Harness) -> list[Any]:
    return [(p["join"], p["score"], p["probabilities"]) for p in h.records("predictions")]


MODELS = {
    "MinMaxScaler | HalfSpaceTrees": (
        lambda: preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=42, window_size=50),
        metrics.ROCAUC),
    "StandardScaler | LogisticRegression": (
        lambda: preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.LogLoss),
}


@pytest.mark.parametrize("name", MODELS)
def test_a_river_snapshot_restored_where_the_model_runs_compiled(name: str) -> None:
    model, metric = MODELS[name]
    data = rows()
    before = run(topology(model(), metric()), data[:N], 0)  # no feature_fields: River
    assert before.state("model")[0]["model"].__class__.__name__ == "Pipeline"
    snapshot = pickle.dumps(before.state("model")[0])
    compiled = topology(model(), metric(), feature_fields=FIELDS)
    assert compiled.nodes["model"].spec.compiled
    after = run(compiled, data[N:], N, snapshot)
    assert after.dead_letters == []
    # the reference: River's own model, restored from the same snapshot, fed the same fields
    river = run(topology(model(), metric(), feature_fields=FIELDS, compiled=False),
                data[N:], N, snapshot)
    assert len(scores(after)) == N
    assert scores(after) == scores(river)
    assert after.state("model")[0]["labels"] == river.state("model")[0]["labels"] == 2 * N


def test_a_compiled_snapshot_restored_where_river_runs_is_river_again() -> None:
    model, metric = MODELS["StandardScaler | LogisticRegression"]
    data = rows()
    before = run(topology(model(), metric(), feature_fields=FIELDS), data[:N], 0)
    snapshot = pickle.dumps(before.state("model")[0])
    after = run(topology(model(), metric()), data[N:], N, snapshot)
    assert after.dead_letters == []
    assert after.state("model")[0]["model"].__class__.__name__ == "Pipeline"


def test_a_compiled_snapshot_restored_with_other_feature_fields() -> None:
    model, metric = MODELS["MinMaxScaler | HalfSpaceTrees"]
    data = rows()
    before = run(topology(model(), metric(), feature_fields=FIELDS[:4]), data[:N], 0)
    snapshot = pickle.dumps(before.state("model")[0])
    after = run(topology(model(), metric(), feature_fields=FIELDS), data[N:], N, snapshot)
    river = run(topology(model(), metric(), feature_fields=FIELDS, compiled=False),
                data[N:], N, snapshot)
    assert after.dead_letters == []
    assert after.state("model")[0]["model"].features == FIELDS
    assert scores(after) == scores(river)


def test_a_restored_model_with_no_compiled_form_is_refused_naming_the_way_out() -> None:
    from river import tree

    data = rows()
    before = run(topology(tree.HoeffdingTreeClassifier(), metrics.Accuracy()), data[:N], 0)
    snapshot = pickle.dumps(before.state("model")[0])
    model, metric = MODELS["StandardScaler | LogisticRegression"]
    after = run(topology(model(), metric(), feature_fields=FIELDS), data[N:], N, snapshot)
    letters = after.dead_letters
    assert letters and letters[0]["message"] == (
        "learner 'model': its restored model HoeffdingTreeClassifier cannot run compiled "
        "(HoeffdingTreeClassifier is not supported); declare compiled=False to run it as River")
