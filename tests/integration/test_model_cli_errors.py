"""``doa model rollback`` to a version the node does not keep is refused at once, from the
versions its models (or versions) stream shows, and nothing is sent."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.model.artifacts import chunk_records
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, read_stream
from tests.test_learner import SCHEMAS
from tests.test_model_versions import Scaled

pytestmark = pytest.mark.broker

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
               features=["age_of_domain", "https"], join="id", keep=2)
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


def refused(path: str, broker: str, node: str, version: int) -> str:
    code, out, err = rollback(path, broker, node, version)
    assert (code, out) == (1, ""), err
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
