"""Two topologies on one broker, each with a model node named ``scorer``: by default both
read ``scorer.versions``, so a version published for one switched the other too (walk 8:
all 2,000 later scores of ``riskb`` came from the version published for ``risk``, and
nothing said so). Deploying the second, while the first runs, is now refused in one line
naming the stream, the other topology's node and the fix; with its own versions stream it
deploys."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from doa.catalog.read import read_topologies
from tests.integration.conftest import doa_process
from tests.integration.helpers import doa_command, one_line, wait_until
from tests.test_learner import SCHEMAS

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="deploy's check reads _doa_topologies with "
                                                  "doa's own client (the catalog tests run it "
                                                  "on both); CI time")]

TOPOLOGY = '''
from doa import Topology
from tests.test_model_versions import Scaled

topology = Topology({name!r}, schemas={schemas!r})
topology.stream("pages", schema="testing.Phish")
topology.stream({scores!r}, schema="doa.Prediction")
topology.model("scorer", reads="pages", writes={scores!r}, model=Scaled(1.0),
               features=["age_of_domain", "https"], join="id"{versions})
'''


def _topology(tmp_path: Path, name: str, scores: str, versions: str = "") -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(TOPOLOGY.format(name=name, schemas=str(SCHEMAS), scores=scores,
                                    versions=versions))
    return str(path)


def test_a_second_topology_cannot_take_the_versions_stream_of_a_running_one(
        broker: str, tmp_path: Path) -> None:
    risk = _topology(tmp_path, "risk", "scores")
    assert doa_command("deploy", risk, "--broker", broker).returncode == 0
    node = doa_process("run", risk, "--broker", broker, env={"DOA_HEARTBEAT_S": "1"})
    try:
        assert wait_until(lambda: read_topologies(broker).described(), 60), \
            "the node never described itself"
        twin = _topology(tmp_path, "riskb", "scores_b")
        done = doa_command("deploy", twin, "--broker", broker)
        assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()
        assert one_line(done.stderr) == (
            "error: stream 'scorer.versions', the versions of node 'scorer', is read by node "
            "'scorer' of topology 'risk' (running) too (described on " + broker + "): what is "
            "sent to it would switch both; give node 'scorer' its own "
            "(versions='riskb.scorer.versions'), or declare the stream with shared=True if "
            "that is intended")
        own = _topology(tmp_path, "riskc", "scores_c", ', versions="riskc.scorer.versions"')
        done = doa_command("deploy", own, "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)


def test_a_candidate_for_a_node_without_shadow_says_its_predictions_are_not_kept(
        broker: str, tmp_path: Path) -> None:
    """Walk 8: ``--candidate`` on a model node with labels but no ``shadow=`` was taken
    silently, and its predictions went nowhere; it is still taken (its label metric counts),
    and a note says so."""
    import joblib
    from sklearn.tree import DecisionTreeRegressor

    path = _topology(tmp_path, "labelled", "scores",
                     ', labels="labels"\n)\ntopology.stream("labels", schema="testing.PhishLabel"')
    assert doa_command("deploy", path, "--broker", broker).returncode == 0
    model = tmp_path / "two.joblib"
    joblib.dump(DecisionTreeRegressor().fit([[1, 2], [3, 4]], [1, 2]), model)
    done = doa_command("model", "publish", path, "scorer", str(model), "--candidate",
                       "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert "(candidate)" in done.stdout.decode()
    assert one_line(done.stderr) == (
        "note: model node 'scorer' declares no shadow= stream: the candidate's predictions "
        "count in its label metric (`doa model compare`) and are not kept")
