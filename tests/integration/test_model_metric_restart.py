"""A model node restarted with another metric publishes the declared one, not its snapshot's.

The walkthrough's case: the metric of ``Labels(...)`` changed from ``Accuracy`` to ``MAE`` and
the node restarted; it restored its snapshot, which held an ``Accuracy``, and went on
publishing ``Accuracy`` until a new model version came. Now the declared metric wins: the
restored one of another class is replaced by a fresh ``MAE`` (labels counted from 0), said
once in the log. ``doa run`` on a real broker, stopped with SIGTERM (its snapshot written),
then run again from the changed topology file.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process
from tests.integration.helpers import read_stream, wait_until

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the node's state logic is broker-"
                                                  "independent (snapshots are tested on both); "
                                                  "CI time")]

TOPOLOGY = '''
from river import metrics
from doa import Labels, Topology


class Tariff:
    def predict_batch(self, X):
        return (3 + 2 * X[:, 0]).round()


topology = Topology("pricing", schemas="schemas")
requests = topology.stream("ride_requests", schema="rides.RideRequest", key="ride_id")
fares = topology.stream("fares", schema="rides.Fare", key="ride_id")
for name, schema in (("prices", "doa.Prediction"), ("metrics", "doa.Metric")):
    topology.stream(name, schema=schema)
topology.model("price", reads=requests, writes="prices", model=Tariff(),
               features=["distance_km"], join="ride_id", versions=None,
               labels=Labels(fares, label="fare", metric=metrics.{metric}(), metrics="metrics",
                             every=10))
'''
N = 20  # rides (and fares) per run


def write(root: Path, metric: str) -> str:
    (root / "schemas").mkdir(exist_ok=True)
    (root / "schemas" / "ride.avsc").write_text(json.dumps({
        "type": "record", "name": "RideRequest", "namespace": "rides", "fields": [
            {"name": "ride_id", "type": "string"}, {"name": "distance_km", "type": "double"}]}))
    (root / "schemas" / "fare.avsc").write_text(json.dumps({  # whole units: a class or a number
        "type": "record", "name": "Fare", "namespace": "rides", "fields": [
            {"name": "ride_id", "type": "string"}, {"name": "fare", "type": "long"}]}))
    (root / "pricing.py").write_text(TOPOLOGY.format(metric=metric))
    return str(root / "pricing.py")


def publish(broker: str, path: str, first: int) -> None:
    t = load_topology(path)
    rides = [{"ride_id": f"r{i}", "distance_km": float(i % 7)} for i in range(first, first + N)]
    with Publisher("ride_requests", broker=broker, topology=t) as pub:
        for i, r in enumerate(rides):
            pub.send(r, timestamp_ms=1000 * first + i)
    with Publisher("fares", broker=broker, topology=t) as pub:
        for i, r in enumerate(rides):
            pub.send({"ride_id": r["ride_id"], "fare": 3 + 2 * int(r["distance_km"]) + i % 2},
                     timestamp_ms=1000 * first + 100 + i)


def metrics_of(broker: str, path: str, n: int) -> list[tuple[str, int]]:
    return [(m["metric"], m["labels"]) for m in
            read_stream(broker, load_topology(path), "metrics", expected=n, idle_s=1)]


def run(path: str, broker: str, log_file: Path) -> Any:
    return doa_process("run", path, "--broker", broker,
                       env={"DOA_MAX_IDLE_MS": "50", "DOA_LOG_FILE": str(log_file)})


def stop(node: Any) -> None:
    os.killpg(node.pid, signal.SIGTERM)  # finishes the batch, writes its snapshot
    node.wait(timeout=30)


def test_the_declared_metric_wins_after_a_restart(broker: str, tmp_path: Path) -> None:
    path = write(tmp_path, "Accuracy")
    prepare(load_topology(path), broker)
    log_file = tmp_path / "doa.log"
    node = run(path, broker, log_file)
    try:
        publish(broker, path, 0)
        assert wait_until(lambda: len(metrics_of(broker, path, 2)) == 2, 90), \
            log_file.read_text() if log_file.exists() else "no log"
    finally:
        stop(node)
    assert metrics_of(broker, path, 2) == [("Accuracy", 10), ("Accuracy", 20)]

    write(tmp_path, "MAE")  # the user's fix, then a restart from the snapshot
    node = run(path, broker, log_file)
    try:
        publish(broker, path, 100)
        assert wait_until(lambda: len(metrics_of(broker, path, 4)) == 4, 90), \
            log_file.read_text()
    finally:
        stop(node)
    assert metrics_of(broker, path, 4)[2:] == [("MAE", 10), ("MAE", 20)]
    said = [line for line in log_file.read_text().splitlines() if "declares metric" in line]
    assert len(said) == 1, said
    assert said[0].endswith("model 'price' partition 0: the topology declares metric MAE, its "
                            "restored state had another (v1: Accuracy of 20 labels): a fresh "
                            "MAE starts now"), said
