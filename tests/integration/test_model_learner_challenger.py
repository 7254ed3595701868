"""A challenger learner on a real broker: ``doa model compare`` shows the live learner and its
challenger on the same labels, ``doa model promote`` makes the challenger live.

The embedded broker only: the race's logic is tested in memory under any batch size
(tests/test_learner_challenger.py); this run checks the CLI, the promote command through the
control stream and the switch in a running worker.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare, run_nodes
from doa.topology.loader import load_topology
from tests.integration.helpers import Tail, doa_command, read_stream
from tests.test_learner import SCHEMAS, phishing

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="broker-independent logic; CI time")]

N = 300
TOPOLOGY = f'''
from river import dummy, linear_model, metrics, preprocessing
from doa import Topology

topology = Topology("race", schemas={str(SCHEMAS)!r})
topology.stream("features", schema="testing.Phish")
topology.stream("labels", schema="testing.PhishLabel")
for name, schema in (("predictions", "doa.Prediction"), ("shadow", "doa.Prediction"),
                     ("models", "doa.ModelEvent"), ("metrics", "doa.Metric"),
                     ("control", "doa.ModelCommand")):
    topology.stream(name, schema=schema)
topology.learner("model", features="features", labels="labels", predictions="predictions",
                 shadow="shadow", models="models", metrics="metrics", control="control",
                 model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 challenger=dummy.PriorClassifier(), metric=metrics.Accuracy(), join="id",
                 label="label", metrics_every=100)
'''


def wait(log: Tail, count: int, timeout: float = 30.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while len(log.records) < count and time.monotonic() < deadline:
        log.poll(20)
    assert len(log.records) >= count, f"{len(log.records)} of {count}"
    return log.records


def test_compare_then_promote_a_challenger_learner(broker: str, tmp_path: Path) -> None:
    path = tmp_path / "race_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    data = phishing()[: N + 5]
    logs = {s: Tail(broker, s) for s in ("metrics", "models", "predictions")}
    started = threading.Event()
    result: dict[str, Any] = {}

    def until(stats: dict[str, Any]) -> bool:
        started.set()
        return bool(stats["model"].records_in >= 2 * N + 1 + 5)

    worker = threading.Thread(target=lambda: result.update(report=asyncio.run(run_nodes(
        t, broker, ["model"], seconds=60, signals=False, until=until))))
    worker.start()
    try:
        assert started.wait(60)
        t0 = time.time_ns() // 1_000_000 - 100_000
        with Publisher("features", broker=broker, topology=t) as pub:
            for i, (x, _) in enumerate(data[:N]):
                pub.send({"id": i, **x}, timestamp_ms=t0 + i)
        with Publisher("labels", broker=broker, topology=t) as pub:
            for i, (_, y) in enumerate(data[:N]):
                pub.send({"id": i, "label": y}, timestamp_ms=t0 + i + 5)
        wait(logs["metrics"], 2 * N // 100)  # both versions' records at 100, 200, 300 labels
        compared = doa_command("model", "compare", str(path), "model", "--broker", broker)
        assert compared.returncode == 0, compared.stderr.decode()
        done = doa_command("model", "promote", str(path), "model", "--reason", "by hand",
                           "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        wait(logs["models"], 2)
        with Publisher("features", broker=broker, topology=t) as pub:
            for i, (x, _) in enumerate(data[N:]):
                pub.send({"id": N + i, **x}, timestamp_ms=time.time_ns() // 1_000_000 + i)
        wait(logs["predictions"], N + 5)
    finally:
        worker.join(90)
    assert not worker.is_alive() and result["report"].stats["model"].dead_letters == 0
    metrics = {m["model_version"]: m for m in read_stream(broker, t, "metrics",
                                                                   expected=2 * N // 100)}
    table = compared.stdout.decode().replace("│", " ")
    rows = {line.split()[1]: line.split() for line in table.splitlines()
            if line.split()[:1] == ["0"]}
    assert rows["live"][2:] == ["1", str(N), f"{metrics[1]['value']:.4f}"]
    assert rows["candidate"][2:] == ["2", str(N), f"{metrics[2]['value']:.4f}"]
    assert metrics[1]["value"] > metrics[2]["value"]  # the prior is the worse model
    events = [(e["action"], e["version"], e["reason"]) for e in read_stream(
        broker, t, "models", expected=2)]
    assert [e[:2] for e in events] == [("candidate", 2), ("promoted", 2)]
    assert events[1][2] == "by hand"
    commands = read_stream(broker, t, "control", expected=1)  # names the version it promotes
    assert [(c["command"], c["version"]) for c in commands] == [("promote", 2)]
    predictions = read_stream(broker, t, "predictions", expected=N + 5)
    assert [p["model_version"] for p in predictions] == [1] * N + [2] * 5
    assert {p["model_version"] for p in read_stream(broker, t, "shadow", expected=N)} == {2}
