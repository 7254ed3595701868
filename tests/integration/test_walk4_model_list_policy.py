"""walk4 finding 2: ``doa model list`` says the live version and candidate the node has after
its Promote policy decided (here: rejected a worse candidate, an event on its models stream
only), and after a version published later; a real ``doa run`` on a real broker."""

from __future__ import annotations

import os
import pickle
import signal
import time
from pathlib import Path

import pytest
from sklearn.dummy import DummyRegressor

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process
from tests.integration.helpers import doa_command, read_stream, wait_until
from tests.integration.test_model_list import lines
from tests.integration.test_model_metric_restart import write

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="CLI output only; CI time")]

POLICY = '''
topology.stream("events", schema="doa.ModelEvent")
topology.stream("shadow", schema="doa.Prediction")
topology.model("price", reads=requests, writes="prices", model=Tariff(),
               features=["distance_km"], join="ride_id", models="events", shadow="shadow",
               labels=Labels(fares, label="fare", metric=metrics.MAE(), metrics="metrics"),
               promote_when=Promote(margin=0.0, after_labels=5))
'''


def policy_topology(root: Path) -> str:
    path = Path(write(root, "MAE"))
    text = path.read_text().replace("from doa import Labels,", "from doa import Labels, Promote,")
    path.write_text(text[:text.index("topology.model(")] + POLICY)
    return str(path)


def send(broker: str, path: str, start: int) -> None:
    t, now = load_topology(path), int(time.time() * 1000) + 5_000  # after the version's stamp
    rides = [{"ride_id": f"r{i}", "distance_km": float(i % 7)} for i in range(start, start + 20)]
    with Publisher("ride_requests", broker=broker, topology=t) as pub:
        for i, r in enumerate(rides):
            pub.send(r, timestamp_ms=now + i)
    with Publisher("fares", broker=broker, topology=t) as pub:
        for i, r in enumerate(rides):
            pub.send({"ride_id": r["ride_id"], "fare": 3 + 2 * int(r["distance_km"])},
                     timestamp_ms=now + 100 + i)


def live_line(path: str, broker: str) -> str:
    listed = doa_command("model", "list", path, "price", "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    [line] = [s for s in lines(listed.stdout) if s.startswith("live:")]
    return line


def test_model_list_follows_a_policy_rejection_then_a_publish(
        broker: str, tmp_path: Path) -> None:
    path = policy_topology(tmp_path)
    prepare(load_topology(path), broker)
    worse = tmp_path / "worse.pkl"
    worse.write_bytes(pickle.dumps(DummyRegressor(strategy="constant", constant=0.0).fit(
        [[0.0]], [0.0])))
    log_file = tmp_path / "doa.log"
    node = doa_process("run", path, "--broker", broker,
                       env={"DOA_MAX_IDLE_MS": "50", "DOA_LOG_FILE": str(log_file)})
    try:
        done = doa_command("model", "publish", path, "price", str(worse), "--candidate",
                           "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        send(broker, path, 0)
        events = lambda: [e["action"] for e in read_stream(  # noqa: E731
            broker, load_topology(path), "events", expected=2, idle_s=1)]
        assert wait_until(lambda: "rejected" in events(), 90), \
            (events(), log_file.read_text() if log_file.exists() else "no log")
        assert live_line(path, broker).endswith("; no candidate")
        done = doa_command("model", "publish", path, "price", str(worse), "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        assert live_line(path, broker) == "live: version 3; no candidate"
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
