"""``doa model rollback`` to a version the node does not keep is refused at once, from the
versions its models (or versions) stream shows, and nothing is sent; so are ``doa model
promote`` with no candidate (challenger) running, and ``doa model publish`` of a file the node
could not load (an unknown extension, another number of input features)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import joblib
import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.model.artifacts import chunk_records
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, read_stream
from tests.test_learner import SCHEMAS
from tests.test_model_versions import Scaled

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the refusals are the CLI's; it reads "
                                                  "the versions streams alike on both; CI time")]

TOPOLOGY = f'''
from river import linear_model, metrics
from doa import Topology
from tests.test_model_versions import Scaled

topology = Topology("refusals", schemas={str(SCHEMAS)!r})
for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                     ("predictions", "doa.Prediction"), ("models", "doa.ModelEvent"),
                     ("control", "doa.ModelCommand"), ("unmatched", "doa.UnmatchedLabel"),
                     ("pages", "testing.Phish"), ("scores", "doa.Prediction")):
    topology.stream(name, schema=schema)
topology.learner("learner", features="features", labels="labels", predictions="predictions",
                 models="models", control="control", unmatched="unmatched",
                 model=linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                 join="id", label="label", version_every=100, keep_versions=3)
topology.model("m", reads="pages", writes="scores", model=Scaled(1.0),
               features=["age_of_domain", "https"], join="id", keep=2, models="m_models")
topology.stream("m_models", schema="doa.ModelEvent")
for name, schema in (("racer_predictions", "doa.Prediction"), ("racer_shadow", "doa.Prediction"),
                     ("racer_models", "doa.ModelEvent"), ("racer_control", "doa.ModelCommand")):
    topology.stream(name, schema=schema)
topology.learner("racer", features="features", labels="labels",
                 predictions="racer_predictions", shadow="racer_shadow", models="racer_models",
                 control="racer_control", model=linear_model.LogisticRegression(),
                 challenger=linear_model.LogisticRegression(), metric=metrics.Accuracy(),
                 join="id", label="label")
'''


def setup(tmp_path: Path, broker: str) -> tuple[str, Any]:
    path = tmp_path / "refusals_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    return str(path), t


def rollback(path: str, broker: str, node: str, version: int) -> tuple[int, str, str]:
    done = doa_command("model", "rollback", path, node, str(version), "--broker", broker)
    return done.returncode, done.stdout.decode(), done.stderr.decode()


def refused(path: str, broker: str, node: str, version: int | None = None,
            *command: str) -> str:
    if command:
        done = doa_command("model", *command, "--broker", broker)
        code, out, err = done.returncode, done.stdout.decode(), done.stderr.decode()
    else:
        assert version is not None
        code, out, err = rollback(path, broker, node, version)
    assert (code, out) == (1, ""), (out, err)
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    return err.strip()


def test_a_learner_rollback_to_a_version_not_kept_is_refused(broker: str,
                                                             tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    assert refused(path, broker, "learner", 1) == (
        "error: learner 'learner' has made no versions yet (no model events on 'models'; has "
        "it run?); nothing sent")
    with Publisher("models", broker=broker, topology=t) as pub:
        for v in range(2, 7):  # versions 2..6 made: the learner keeps the last 3
            pub.send({"model": "learner", "action": "created", "version": v,
                      "from_version": v - 1, "reason": "", "labels": 100 * (v - 1),
                      "metric": None, "partition": 0, "timestamp": v, "blob": None})
    for version in (99, 2):  # never made; made but no longer kept
        assert refused(path, broker, "learner", version) == (
            f"error: learner 'learner': cannot roll back to version {version}: kept versions "
            "are [4, 5, 6]; nothing sent")
    assert read_stream(broker, t, "control", idle_s=2) == []
    code, out, err = rollback(path, broker, "learner", 4)
    assert code == 0, err
    assert "asked learner to roll back to version 4" in out
    assert [e["version"] for e in read_stream(broker, t, "control", expected=1)] == [4]


def test_a_model_node_rollback_to_a_version_not_kept_is_refused(broker: str,
                                                                tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    with Publisher("m.versions", broker=broker, topology=t) as pub:
        for v in (2, 3, 4):  # the node keeps the bytes of the newest 2, and its own version 1
            for c in chunk_records("m", v, pickle.dumps(Scaled(float(v))), fmt="sklearn",
                                   chunk_bytes=1000, publisher="test", published=0, key=None):
                pub.send(c)
    sent = len(read_stream(broker, t, "m.versions", idle_s=2))
    for version in (99, 2):
        assert refused(path, broker, "m", version) == (
            f"error: model node 'm': cannot roll back to version {version}: kept versions "
            "are [1, 3, 4]; nothing sent")
    assert len(read_stream(broker, t, "m.versions", idle_s=2)) == sent
    code, _out, err = rollback(path, broker, "m", 1)
    assert code == 0, err


def test_publish_of_a_file_the_node_could_not_load_is_refused(broker: str,
                                                              tmp_path: Path) -> None:
    from sklearn.tree import DecisionTreeRegressor

    path, t = setup(tmp_path, broker)
    three = tmp_path / "three.joblib"
    joblib.dump(DecisionTreeRegressor().fit([[1, 2, 3], [4, 5, 6]], [1, 2]), three)
    text = tmp_path / "model.txt"
    text.write_bytes(pickle.dumps(Scaled(2.0)))
    assert refused(path, broker, "m", None, "publish", path, "m", str(three)) == (
        f"error: model node 'm': version 2 from {three} (DecisionTreeRegressor) expects 3 "
        "input features, the node declares 2 (age_of_domain, https); nothing sent")
    assert refused(path, broker, "m", None, "publish", path, "m", str(text)) == (
        f"error: model node 'm': unknown model format '.txt' for {text} (expected .onnx, "
        ".joblib, .pkl, .pickle); nothing sent")
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"hello\n")
    assert refused(path, broker, "m", None, "publish", path, "m", str(junk)).startswith(
        f"error: model node 'm': cannot load version 2 from {junk} (sklearn, 6 bytes): ")
    assert read_stream(broker, t, "m.versions", idle_s=2) == []
    two = tmp_path / "two.joblib"
    joblib.dump(DecisionTreeRegressor().fit([[1, 2], [3, 4]], [1, 2]), two)
    done = doa_command("model", "publish", path, "m", str(two), "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert len(read_stream(broker, t, "m.versions", expected=1)) == 1


def test_promote_with_no_candidate_running_is_refused(broker: str, tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    promote = ("promote", path, "m")
    assert refused(path, broker, "m", None, *promote) == (
        "error: model node 'm': cannot promote, no candidate runs (publish one with `doa "
        "model publish --candidate`); nothing sent")
    assert read_stream(broker, t, "m.versions", idle_s=2) == []
    with Publisher("m.versions", broker=broker, topology=t) as pub:
        for c in chunk_records("m", 2, pickle.dumps(Scaled(2.0)), fmt="sklearn",
                               chunk_bytes=1000, publisher="test", published=0, key=None,
                               candidate=True):
            pub.send(c)
    done = doa_command("model", *promote, "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert [e["action"] for e in read_stream(broker, t, "m.versions", expected=2)] == [
        "publish", "promote"]
    assert refused(path, broker, "m", None, *promote).endswith("no candidate runs (publish "
                                                               "one with `doa model publish "
                                                               "--candidate`); nothing sent")
    assert refused(path, broker, "learner", None, "promote", path, "learner") == (
        "error: learner 'learner' has no challenger to promote (declare one: "
        "topology.learner(..., challenger=MODEL, shadow=STREAM)); nothing sent")
    assert read_stream(broker, t, "control", idle_s=2) == []
    with Publisher("racer_models", broker=broker, topology=t) as pub:  # the policy decided
        pub.send({"model": "racer", "action": "rejected", "version": 2, "from_version": 1,
                  "reason": "", "labels": 100, "metric": None, "partition": 0,
                  "timestamp": 1, "blob": None})
    assert refused(path, broker, "racer", None, "promote", path, "racer") == (
        "error: learner 'racer': cannot promote, no challenger runs (it was promoted or "
        "rejected); nothing sent")
    assert read_stream(broker, t, "racer_control", idle_s=2) == []
