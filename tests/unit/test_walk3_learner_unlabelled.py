"""A learner without labels: an anomaly detector scores each record, then learns on it.

An anomaly detector (River's HalfSpaceTrees: ``learn_one(x)``, ``score_one(x)``) learned
only when a label came, so with labels arriving late every score was 0.0, and a learner could
not be declared without labels (``Inputs(feats, None)``: "reads stream 'None', which is not
declared"). Declared without labels, it now learns on every record right after scoring it,
as River's own loop ``s = model.score_one(x); model.learn_one(x)`` does, record for record,
run as River or compiled, across a restart from its snapshot; ``doa check`` refuses a model
that needs labels without them, in one line.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from river import anomaly, datasets, linear_model, metrics, preprocessing

from doa import Topology
from doa.errors import TopologyError
from doa.learner.spec import Inputs, Outputs, Versions
from doa.testing import Harness

SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
FIELDS = ("ordinal_date", "gallup", "ipsos", "morning_consult", "rasmussen", "you_gov")


def rows() -> list[dict[str, float]]:
    return [{k: float(v) for k, v in x.items()} for x, _ in datasets.TrumpApproval()]


def detector() -> Any:
    return preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=7, window_size=40)


def topology(model: Any, **options: Any) -> Topology:
    t = Topology("unlabelled", schemas=SCHEMAS)
    feats = t.stream("features", schema="testing.Approval")
    scores = t.stream("scores", schema="doa.Prediction")
    t.stream("models", schema="doa.ModelEvent")
    t.learner("hst", model=model, reads=Inputs(feats, None, join="id", **options),
              writes=Outputs(scores, models="models"), versions=Versions(every=100))
    return t


def run(t: Topology, data: list[dict[str, float]], first: int = 0,
        state: Any = None) -> Harness:
    h = Harness(t, batch_size=50)
    if state is not None:
        h._states["hst"][0] = pickle.loads(state)  # what a restart restores
    ids = range(first, first + len(data))
    h.publish("features", [{"id": i, **x} for i, x in zip(ids, data, strict=True)],
              timestamps=ids, partition=0)
    h.run()
    return h


def reference(data: list[dict[str, float]], fields: tuple[str, ...] | None) -> list[float]:
    model, out = detector(), []
    for x in data:
        x = {k: x[k] for k in fields} if fields else x
        out.append(model.score_one(x))
        model.learn_one(x)
    return out


@pytest.mark.parametrize("fields", [None, FIELDS], ids=["river", "compiled"])
def test_scores_equal_rivers_own_loop_record_for_record(fields: Any) -> None:
    data = rows()
    t = topology(detector(), feature_fields=fields)
    assert t.nodes["hst"].spec.compiled == (fields is not None)
    h = run(t, data)
    got = [p["score"] for p in h.records("scores")]
    want = reference(data, fields)
    assert got == want
    assert len(set(want)) > 10  # it learned: the scores move
    assert h.dead_letters == []
    created = [e for e in h.records("models") if e["action"] == "created"]
    assert [e["labels"] for e in created] == [100 * k for k in range(1, len(data) // 100 + 1)]


def test_a_restart_from_its_snapshot_goes_on_as_if_it_had_not_stopped() -> None:
    data = rows()
    half = len(data) // 2
    first = run(topology(detector(), feature_fields=FIELDS), data[:half])
    snapshot = pickle.dumps(first.state("hst")[0])
    second = run(topology(detector(), feature_fields=FIELDS), data[half:], half, snapshot)
    got = [p["score"] for h in (first, second) for p in h.records("scores")]
    assert got == reference(data, FIELDS)


def test_check_refuses_a_model_that_learns_from_labels_without_them() -> None:
    with pytest.raises(TopologyError) as caught:
        topology(linear_model.LinearRegression(), feature_fields=FIELDS).check()
    assert str(caught.value).endswith(
        "learner 'hst': no labels= and its model LinearRegression is a regressor: it learns "
        "from labels; declare a label stream (Inputs(features, labels)) or use an anomaly "
        "detector (it learns on every record)")


def test_check_refuses_outputs_that_need_labels() -> None:
    t = Topology("unlabelled", schemas=SCHEMAS)
    t.stream("features", schema="testing.Approval")
    t.stream("scores", schema="doa.Prediction")
    t.stream("outcomes", schema="doa.Outcome")
    t.learner("hst", model=detector(), metric=metrics.ROCAUC(), features="features",
              predictions="scores", outcomes="outcomes", join="id")
    with pytest.raises(TopologyError, match="no labels=, but outcomes= need labels"):
        t.check()
