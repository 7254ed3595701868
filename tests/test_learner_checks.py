"""What a learner's declaration must get right (doa.learner.checks), and how it treats a
NaN feature (doa.learner.records.finite): refused or told in one line, never found later as
a dead letter per record or a NaN metric."""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pytest
from river import evaluate, linear_model, metrics, preprocessing

from doa import Topology
from doa.errors import DoaError
from doa.learner.checks import DeclarationError
from tests.test_learner import SCHEMAS, approval, run_learner, topology


def drift_topology(key: str | None, partitions: int) -> Topology:
    t = Topology("drifting", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction"), ("drift", "doa.DriftEvent")):
        t.stream(name, schema=schema, partitions=partitions,
                 key=key if name == "drift" else None)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              drift="drift", on_drift="reset", model=linear_model.LogisticRegression(),
              metric=metrics.Accuracy(), join="id", label="label")
    return t


def test_a_keyed_drift_stream_of_several_partitions_is_refused_in_one_line() -> None:
    [line] = drift_topology("node", 2).validate()
    assert line.startswith("learner 'model': its drift stream 'drift' has key 'node' and 2 "
                           "partitions")
    assert "key=None" in line
    assert drift_topology(None, 2).validate() == []
    assert drift_topology("node", 1).validate() == []  # one partition: one learner


@pytest.mark.parametrize(("model", "labels", "refused"), [
    (linear_model.LinearRegression, "testing.ApprovalLabel", None),
    (linear_model.LogisticRegression, "testing.PhishLabel", None),
    (linear_model.LinearRegression, "testing.PhishLabel", "is boolean: a regressor "
     "(LinearRegression) learns a number (int, long, float, double)"),
    (linear_model.LogisticRegression, "testing.ApprovalLabel", "is double: a classifier "
     "(LogisticRegression) learns a class (string, boolean, int, long, enum)"),
], ids=["regressor-double", "classifier-boolean", "regressor-boolean", "classifier-double"])
def test_the_label_type_must_fit_the_model(model: Any, labels: str, refused: str | None
                                           ) -> None:
    metric = metrics.MAE() if model is linear_model.LinearRegression else metrics.Accuracy()
    found = topology(model(), metric, "testing.Approval", labels).validate()
    if refused is None:
        assert found == []
    else:
        assert found == [f"learner 'model': label field 'label' of stream 'labels' {refused}"
                         + ("; a class needs a classifier" if "regressor" in refused else
                            "; a number to predict needs a regressor")]


def test_a_string_regression_target_is_refused(tmp_path: Path) -> None:
    """The walkthrough's case: the target declared as string passed `doa check`, then every
    label was a dead letter (TypeError: unsupported operand type(s) for -: 'str' ...)."""
    (tmp_path / "approval.avsc").write_text((SCHEMAS / "approval.avsc").read_text())
    (tmp_path / "label.avsc").write_text(
        '{"type": "record", "name": "Target", "namespace": "t", "fields": ['
        '{"name": "id", "type": "long"}, {"name": "label", "type": ["null", "string"]}]}')
    t = Topology("strings", schemas=tmp_path)
    t.stream("features", schema="testing.Approval")
    t.stream("labels", schema="t.Target")
    t.stream("predictions", schema="doa.Prediction")
    t.learner("model", features="features", labels="labels", predictions="predictions",
              model=preprocessing.StandardScaler() | linear_model.LinearRegression(),
              metric=metrics.MAE(), join="id", label="label")
    assert t.validate() == [
        "learner 'model': label field 'label' of stream 'labels' is null | string: a regressor "
        "(StandardScaler | LinearRegression) learns a number (int, long, float, double); a "
        "class needs a classifier"]


def test_a_regression_metric_on_a_classifier_is_one_line_naming_the_declaring_line() -> None:
    """Before: AttributeError: 'MAE' object has no attribute 'requires_labels' (node.py)."""
    with pytest.raises(DeclarationError) as caught:
        topology(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metrics.MAE(), "testing.Approval", "testing.ApprovalLabel")
    assert str(caught.value).startswith(
        "learner 'model': metric MAE is a regression metric and the model StandardScaler | "
        "LogisticRegression is a classifier; give a metric for a classifier (e.g. "
        "metrics.Accuracy()) or a regressor (test_learner.py, line ")  # where t.learner is
    assert isinstance(caught.value, DoaError) and isinstance(caught.value, ValueError)


def test_doa_check_names_the_topology_line_of_a_learner_declared_wrongly(tmp_path: Path
                                                                         ) -> None:
    from doa.topology.loader import load_topology

    path = tmp_path / "wrong.py"
    path.write_text(f"""from river import linear_model, metrics
from doa import Topology

t = Topology("wrong", schemas={str(SCHEMAS)!r})
t.stream("features", schema="testing.Approval")
t.stream("labels", schema="testing.ApprovalLabel")
t.stream("predictions", schema="doa.Prediction")
t.learner("model", features="features", labels="labels", predictions="predictions",
          model=linear_model.LinearRegression(), metric=metrics.Accuracy(),
          join="id", label="label")
""")
    with pytest.raises(DoaError) as caught:
        load_topology(str(path))
    assert str(caught.value) == (
        "learner 'model': metric Accuracy is a classification metric and the model "
        "LinearRegression is a regressor; give a metric for a regressor (e.g. metrics.MAE()) "
        "or a classifier (wrong.py, line 8)")
    with pytest.raises(TypeError, match=r"both given.*\(test_learner.py, line \d+\)$"):
        topology(linear_model.LinearRegression(), metrics.MAE(), "testing.Approval",
                 "testing.ApprovalLabel", reads="features")  # reads= and features= both


def with_holes(rows: list[tuple[dict[str, float], float]]) -> list[tuple[dict[str, float],
                                                                          float]]:
    """Every 7th row's gallup is NaN, every 11th's ipsos infinite (a kernel's first event)."""
    out = []
    for i, (x, y) in enumerate(rows):
        x = dict(x)
        if i % 7 == 0:
            x["gallup"] = math.nan
        if i % 11 == 0:
            x["ipsos"] = math.inf
        out.append((x, y))
    return out


def test_a_nan_feature_is_left_out_and_told_once_and_the_metric_is_river_s(
        caplog: pytest.LogCaptureFixture) -> None:
    """Before: River got the NaN and every later prediction and the metric were NaN. Now
    the feature is absent (River's own way for an unknown value), so the metric equals
    progressive_val_score on the same rows with those keys left out (DESIGN principle 4)."""
    rows = with_holes(approval()[:600])
    model = preprocessing.StandardScaler() | linear_model.LinearRegression()
    t = topology(model.clone(), metrics.MAE(), "testing.Approval", "testing.ApprovalLabel",
                 metrics_every=100)
    with caplog.at_level(logging.WARNING, logger="doa.learner"):
        h = run_learner(t, rows, delay=5)
    told = [r.getMessage() for r in caplog.records if r.name.startswith("doa.learner")]
    assert told == ["learner 'model': feature 'gallup' is nan in stream 'features' partition 0 "
                    "offset 0, its writer sent it so (a NaN or infinite value in a "
                    "node's input, or a kernel's output for a key with no value yet; `doa "
                    "lineage features:0:0` shows the input): fix the value at its source; "
                    "meanwhile it is left out of what the model sees, as River takes an "
                    "absent feature; told once per learner"]
    values = [m["value"] for m in h.records("metrics")]
    assert len(values) == 6 and all(math.isfinite(v) for v in values)
    absent = [({k: v for k, v in x.items() if math.isfinite(v)}, y) for x, y in rows]
    reference = evaluate.progressive_val_score(absent, model.clone(), metrics.MAE(),
                                               moment=None, delay=5)
    assert values[-1] == pytest.approx(reference.get(), abs=1e-12, rel=0)
    [first] = h.records("predictions")[:1]
    assert "gallup" not in first["features"] and "ipsos" not in first["features"]


def test_a_compiled_learner_dead_letters_a_record_with_a_nan_feature() -> None:
    rows = with_holes(approval()[:50])
    t = topology(linear_model.LinearRegression(), metrics.MAE(), "testing.Approval",
                 "testing.ApprovalLabel", feature_fields=list(rows[0][0]), compiled=True)
    h = run_learner(t, [r for i, r in enumerate(rows) if i % 11], delay=0)
    letters = h.dead_letters
    assert len(letters) == len([i for i in range(50) if i % 11 and i % 7 == 0])
    assert letters[0]["message"].startswith(
        "learner 'model': feature 'gallup' is nan in features:0:6: fix the value at its "
        "source; this record is a dead letter (a compiled model takes every feature)\n"
        "where it came from: its writer sent it so (a NaN or infinite value in a "
        "node's input, or a kernel's output for a key with no value yet; `doa lineage "
        "features:0:6` shows the input)")
    assert "feature_fields" not in letters[0]["message"]
    assert all(math.isfinite(m["value"]) for m in h.records("metrics"))


def test_a_nan_metric_is_told_once(caplog: pytest.LogCaptureFixture) -> None:
    rows = [(x, math.nan if i == 3 else y) for i, (x, y) in enumerate(approval()[:40])]
    t = topology(linear_model.LinearRegression(), metrics.MAE(), "testing.Approval",
                 "testing.ApprovalLabel", metrics_every=10)
    with caplog.at_level(logging.WARNING, logger="doa.learner"):
        h = run_learner(t, rows, delay=1)
    assert all(math.isnan(m["value"]) for m in h.records("metrics"))
    told = [r.getMessage() for r in caplog.records if r.name.startswith("doa.learner")]
    assert told == ["learner 'model': its MAE is nan after 10 labels: a prediction or a label "
                    "was not a finite number; told once per learner"]

