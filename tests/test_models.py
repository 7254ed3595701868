"""Model versions, rollback commands and drift policies of the learner, in the harness."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest
from river import linear_model, metrics, preprocessing

from doa import Topology
from doa.cluster.signing import SEAL, SignatureError
from doa.learner.versions import load_model
from doa.testing import Harness
from tests.test_learner import SCHEMAS, phishing

DELAY = 5


def make_model() -> Any:
    return preprocessing.StandardScaler() | linear_model.LogisticRegression()


def build(on_drift: str = "ignore", version_every: int | None = 100,
          compiled: bool = False) -> Topology:
    t = Topology("versions", schemas=SCHEMAS)
    for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                         ("predictions", "doa.Prediction"), ("models", "doa.ModelEvent"),
                         ("control", "doa.ModelCommand"), ("drift", "doa.DriftEvent"),
                         ("unmatched", "doa.UnmatchedLabel")):
        t.stream(name, schema=schema)
    t.learner("model", features="features", labels="labels", predictions="predictions",
              models="models", control="control", drift="drift", unmatched="unmatched",
              model=make_model(), metric=metrics.Accuracy(), join="id", label="label",
              version_every=version_every, on_drift=on_drift, keep_versions=50,
              compiled=compiled, feature_fields=list(phishing()[0][0]) if compiled else None)
    return t


def feed(h: Harness, rows: list[tuple[dict[str, float], bool]], start: int = 0) -> None:
    h.publish("features", [{"id": start + i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=[start + i for i in range(len(rows))])
    h.publish("labels", [{"id": start + i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=[start + i + DELAY for i in range(len(rows))])


def trained_after(rows: list[tuple[dict[str, float], bool]], labels: int) -> Any:
    """River by hand: the model after ``labels`` labels in simulate_qa order (delay DELAY)."""
    from river import stream

    model = make_model()
    learned = 0
    for _i, x, y in stream.simulate_qa(rows, moment=None, delay=DELAY):
        if y is not None:
            if learned == labels:
                break
            model.learn_one(x, y)
            learned += 1
    return model


def weights(model: Any) -> dict[str, float]:
    from doa.learner.versions import river_model

    return dict(river_model(model)["LogisticRegression"].weights)


def test_versions_are_created_every_n_labels_with_the_model_of_that_moment() -> None:
    rows = phishing()[:600]
    h = Harness(build())
    feed(h, rows)
    h.run()
    created = [e for e in h.records("models") if e["action"] == "created"]
    assert [e["version"] for e in created] == list(range(2, 8))
    assert [e["labels"] for e in created] == list(range(100, 700, 100))
    for e in created:
        model = load_model(e)
        assert weights(model) == pytest.approx(weights(trained_after(rows, e["labels"])),
                                               abs=1e-12)
    versions = [p["model_version"] for p in h.records("predictions")]
    # the 600th label (version 7) comes after the last prediction
    assert versions == sorted(versions) and versions[0] == 1 and versions[-1] == 6


def test_with_a_signing_key_model_versions_are_sealed_and_checked_before_unpickling(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tests.test_signing import Plant

    key = "model-signing-key-0123456789"
    monkeypatch.setenv("DOA_SIGNING_KEY", key)
    rows = phishing()[:300]
    h = Harness(build())
    feed(h, rows)
    h.run()
    created = [e for e in h.records("models") if e["action"] == "created"]
    assert [e["version"] for e in created] == [2, 3, 4]
    for e in created:
        assert e["blob"].startswith(SEAL)
        assert weights(load_model(e)) == pytest.approx(
            weights(trained_after(rows, e["labels"])), abs=1e-12)
    e = created[0]
    with pytest.raises(SignatureError, match=r"model 'model' version 2 \(partition 0\) is "
                                             r"mis-signed .*; refused, not unpickled"):
        load_model(e, env={"DOA_SIGNING_KEY": "some-other-key-0123456789"})
    with pytest.raises(SignatureError, match=r"version 3 .* is mis-signed"):
        load_model({**e, "version": 3})  # a signed blob presented as another version
    marker = tmp_path / "owned"
    forged = {**e, "blob": pickle.dumps(Plant(marker))}
    with pytest.raises(SignatureError, match="is unsigned"):
        load_model(forged)
    assert not marker.exists()
    load_model(forged, env={})  # control: without a key the bare pickle loads, and runs
    assert marker.exists()


def test_rollback_command_loads_the_version_and_continues_as_a_new_one() -> None:
    rows = phishing()[:400]
    h = Harness(build())
    feed(h, rows[:300])
    h.run()
    h.publish("control", [{"command": "rollback", "version": 2, "reason": "bad deploy"}],
              timestamps=[300 + DELAY])
    feed(h, rows[300:], start=300)
    h.run()
    events = h.records("models")
    [rolled] = [e for e in events if e["action"] == "rollback"]
    assert (rolled["from_version"], rolled["version"], rolled["reason"]) == (2, 5, "bad deploy")
    v2 = next(e for e in events if e["version"] == 2)
    state = h.state("model")[0]
    assert weights(pickle.loads(state["versions"][5]["blob"])) == weights(load_model(v2))
    after = [p for p in h.records("predictions") if p["timestamp"] > 300 + DELAY]
    assert after and all(p["model_version"] >= 5 for p in after)


def test_rollback_to_a_version_not_kept_is_a_dead_letter_naming_the_kept_ones() -> None:
    h = Harness(build())
    feed(h, phishing()[:150])
    h.publish("control", [{"command": "rollback", "version": 42}], timestamps=[200])
    h.run()
    [letter] = h.dead_letters
    assert letter["stream"] == "control" and "version 42" in letter["message"]
    assert "[1, 2]" in letter["message"]


def drift_event(ts: int) -> dict[str, Any]:
    return {"detector": "ADWIN", "signal": "error", "node": "watch", "key": None,
            "model_version": 0, "position": 7, "stream": "outcomes", "partition": 0,
            "offset": 0, "timestamp": ts, "statistics": {}}


@pytest.mark.parametrize("compiled", [False, True], ids=["river", "compiled"])
@pytest.mark.parametrize("policy", ["ignore", "reset", "rollback"])
def test_drift_policies(policy: str, compiled: bool) -> None:
    rows = phishing()[:400]
    h = Harness(build(on_drift=policy, compiled=compiled))
    feed(h, rows[:350])
    h.publish("drift", [drift_event(250)], timestamps=[349 + DELAY])
    h.run()
    events = h.records("models")
    acted = [e for e in events if e["action"] != "created"]
    assert len(acted) == 1
    state = h.state("model")[0]
    if policy == "ignore":
        assert acted[0]["action"] == "drift_ignored" and "ADWIN on error" in acted[0]["reason"]
        assert state["version"] == 4
    elif policy == "reset":
        assert (acted[0]["action"], acted[0]["from_version"]) == ("reset", 4)
        assert state["version"] == 5 and weights(state["model"]) == {}
    else:
        # the newest version created before the record that triggered the drift (t=250):
        # version 3 was created at the 200th label (t=204)
        assert (acted[0]["action"], acted[0]["from_version"]) == ("rollback", 3)
        assert weights(state["model"]) == weights(pickle.loads(state["versions"][3]["blob"]))


def test_doa_check_names_wrong_fields_and_schemas_of_a_learner() -> None:
    t = Topology("wrong", schemas=SCHEMAS)
    t.stream("features", schema="testing.Phish")
    t.stream("labels", schema="testing.PhishLabel")
    t.stream("predictions", schema="doa.Outcome")
    t.learner("model", features="features", labels="labels", predictions="predictions",
              model=make_model(), metric=metrics.Accuracy(), join="page", label="is_phish",
              feature_fields=["https", "colour"])
    found = t.validate()
    assert "learner 'model': join field 'page' is not a field of stream 'features'" in found[0]
    assert any("join field 'page'" in p and "'labels'" in p for p in found)
    assert any("label field 'is_phish'" in p for p in found)
    assert any("feature field 'colour'" in p for p in found)
    assert not any("feature field 'https'" in p for p in found)
    assert any("predictions stream 'predictions' must have schema doa.Prediction, not "
               "doa.Outcome" in p for p in found)
    assert build().validate() == []


@pytest.mark.parametrize("compiled", [None, False])
def test_doa_check_refuses_a_string_feature_for_a_compiled_model(tmp_path: Path,
                                                                 compiled: bool | None) -> None:
    # walkthrough: check said ok, then every record was a dead letter "compiled model:
    # features must be numbers (could not convert string to float: 'c0')"
    import json

    (tmp_path / "txn.avsc").write_text(json.dumps({
        "type": "record", "name": "Txn", "namespace": "t", "fields": [
            {"name": "id", "type": "string"}, {"name": "amount", "type": "double"},
            {"name": "card", "type": "string"}, {"name": "age", "type": ["null", "long"]}]}))
    (tmp_path / "label.avsc").write_text(json.dumps({
        "type": "record", "name": "Label", "namespace": "t", "fields": [
            {"name": "id", "type": "string"}, {"name": "fraud", "type": "boolean"}]}))
    t = Topology("strings", schemas=tmp_path)
    t.stream("txns", schema="t.Txn")
    t.stream("labels", schema="t.Label")
    t.stream("predictions", schema="doa.Prediction")
    t.learner("model", features="txns", labels="labels", predictions="predictions",
              model=make_model(), metric=metrics.Accuracy(), join="id", label="fraud",
              feature_fields=["amount", "card", "age"], compiled=compiled)
    found = t.validate()
    if compiled is False:  # River's own model takes what it is given
        assert found == []
    else:  # compiled by default when the model is supported and the fields are declared
        assert found == ["learner 'model': feature field 'card' of stream 'txns' is string: a "
                         "compiled model takes numbers (int, long, float, double, boolean); "
                         "compiled=False runs River's own model"]
