"""``doa model rollback`` on real brokers: the command is applied, and ``doa model list`` says so.

The learner reads its features, labels and commands through the timestamp merge; a command
is released once the other inputs are caught up. A learner restarted from a snapshot that
covers its inputs up to their end fetches nothing from them, and it must still count them as
caught up (issue 17.1: the command waited forever, "in 0").
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines import NodeStats
from doa.engines.launch import prepare, run_nodes
from doa.learner.versions import river_model
from doa.runtime.snapshot import latest_snapshot
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.helpers import doa_command, raw_records, read_stream
from tests.test_learner import SCHEMAS, phishing
from tests.test_models import DELAY, trained_after, weights

pytestmark = pytest.mark.broker

BASE = 1_700_000_000_000
ROWS = 400

TOPOLOGY = f'''
from river import linear_model, metrics, preprocessing
from doa import Topology

topology = Topology("rollback", schemas={str(SCHEMAS)!r})
for name, schema in (("features", "testing.Phish"), ("labels", "testing.PhishLabel"),
                     ("predictions", "doa.Prediction"), ("models", "doa.ModelEvent"),
                     ("control", "doa.ModelCommand"), ("unmatched", "doa.UnmatchedLabel")):
    topology.stream(name, schema=schema)
topology.learner("model", features="features", labels="labels", predictions="predictions",
                 models="models", control="control", unmatched="unmatched",
                 model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metric=metrics.Accuracy(), join="id", label="label", version_every=100,
                 keep_versions=10)
'''


def learned(tmp_path: Path, broker: str) -> tuple[str, Topology]:
    """The topology file, its inputs published, and a learner run over all of them (so its
    snapshot covers every input up to the end)."""
    path = tmp_path / "rollback_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    rows = phishing()[:ROWS]
    with Publisher("features", broker=broker, topology=t) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + i)
    with Publisher("labels", broker=broker, topology=t) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + DELAY)
    report = run(t, broker, 2 * ROWS)
    assert report["model"].records_in == 2 * ROWS
    return str(path), t


def run(t: Topology, broker: str, expected_in: int, started: threading.Event | None = None,
        timeout: float = 45.0) -> dict[str, NodeStats]:
    """Run the learner until it has read ``expected_in`` records (or ``timeout``);
    ``started`` is set once it has joined its group and loaded its assignment."""
    def until(stats: dict[str, NodeStats]) -> bool:
        if started is not None:
            started.set()
        return stats["model"].records_in >= expected_in

    report = asyncio.run(run_nodes(t, broker, ["model"], seconds=timeout, signals=False,
                                   until=until))
    return report.stats


def rollback(path: str, broker: str, version: int) -> None:
    done = doa_command("model", "rollback", path, "model", str(version), "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert b"asked model to roll back" in done.stdout


def check_rolled_back(path: str, t: Topology, broker: str, to: int) -> None:
    rows = phishing()[:ROWS]
    events = read_stream(broker, t, "models", idle_s=2)
    rollbacks = [e for e in events if e["action"] == "rollback"]
    assert [e["from_version"] for e in rollbacks] == [to]
    assert rollbacks[0]["version"] == max(e["version"] for e in events) == 6  # v2..v5, then 6
    # The learner's state now holds version `to`'s model: the model River learns after
    # (to - 1) * 100 labels (versions are made every 100 labels, version 1 is the fresh one).
    values: dict[int, list[bytes]] = defaultdict(list)
    for (p, _offset), value in sorted(raw_records(broker, state_topic(t, "model")).items()):
        values[p].append(value)
    snap = latest_snapshot(values[0])
    assert snap is not None and snap.state["version"] == 6
    reference = trained_after(rows, (to - 1) * 100)
    assert weights(snap.state["model"]) == pytest.approx(weights(reference), abs=1e-12)
    assert weights(river_model(snap.state["model"])) != pytest.approx(
        weights(trained_after(rows, ROWS)), abs=1e-6)
    listed = doa_command("model", "list", path, "model", "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    lines = [line for line in listed.stdout.decode().splitlines() if "rollback" in line]
    assert len(lines) == 1 and f" {to} " in lines[0].replace("│", " "), listed.stdout.decode()


def test_rollback_is_applied_by_a_learner_started_after_the_command(broker: str,
                                                                    tmp_path: Path) -> None:
    path, t = learned(tmp_path, broker)
    rollback(path, broker, 3)
    stats = run(t, broker, 1)
    assert stats["model"].records_in == 1 and stats["model"].dead_letters == 0
    check_rolled_back(path, t, broker, 3)


@pytest.mark.brokers("tansu",
                     reason="the control stream is read as any input; a learner started after "
                            "the command runs on Kafka; CI time")
def test_rollback_is_applied_by_a_running_learner(broker: str, tmp_path: Path) -> None:
    path, t = learned(tmp_path, broker)
    started = threading.Event()
    result: dict[str, Any] = {}

    def learner() -> None:
        result["stats"] = run(t, broker, 1, started=started)

    thread = threading.Thread(target=learner)
    thread.start()
    try:
        assert started.wait(60), "the learner did not start"
        rollback(path, broker, 2)
    finally:
        thread.join(90)
    assert not thread.is_alive()
    assert result["stats"]["model"].records_in == 1
    check_rolled_back(path, t, broker, 2)
