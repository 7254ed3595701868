"""Model versions as data on a real broker: ``doa model publish`` while the node runs, ``doa
model rollback``, and kill -9 while a version's chunks are being read.

The embedded broker only: versions are records merged by timestamp like any input (the
harness tests cover the logic under any batch size); these runs check the CLI, the chunks
through Kafka, the switch in a running worker, and recovery from snapshots that hold a
version half read.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines import EngineSettings
from doa.engines.launch import prepare, run_nodes
from doa.events import lineage_of
from doa.model.artifacts import chunk_records
from doa.testing import Harness
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process, kill9
from tests.integration.helpers import Tail, doa_command, read_stream
from tests.test_model_versions import SCHEMAS, Scaled, rows

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="broker-independent logic; CI time")]

TOPOLOGY = f'''
from doa import Topology
from tests.test_model_versions import Scaled

topology = Topology("mv", schemas={str(SCHEMAS)!r})
topology.stream("pages", schema="testing.Phish", partitions=2)
topology.stream("scores", schema="doa.Prediction", partitions=2)
topology.stream("events", schema="doa.ModelEvent")
topology.model("m", reads="pages", writes="scores", model=Scaled(1.0),
               features=["age_of_domain", "https"], join="id", models="events")
'''


def setup(tmp_path: Path, broker: str) -> tuple[str, Any]:
    path = tmp_path / "mv_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    return str(path), t


def send(t: Any, broker: str, data: list[dict[str, Any]], first_ms: int) -> None:
    with Publisher("pages", broker=broker, topology=t) as pub:
        for i, row in enumerate(data):
            pub.send(row, timestamp_ms=first_ms + i)


def by_join(records: list[Any]) -> dict[int, Any]:
    out: dict[int, Any] = {}
    for r in records:
        j = int(r["join"])
        assert j not in out or (out[j].id == r.id and dict(out[j]) == dict(r)), \
            f"record {j} scored twice with different results"
        out[j] = r
    return out


def test_publish_while_running_then_rollback(broker: str, tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    model = tmp_path / "v2.pkl"
    model.write_bytes(pickle.dumps(Scaled(2.0)))
    data = rows(600)
    started = threading.Event()
    result: dict[str, Any] = {}

    def until(stats: dict[str, Any]) -> bool:
        started.set()
        return bool(stats["m"].records_in >= 600 + 2 * 2)  # rows, one chunk and one command
                                                            # per partition

    def run() -> None:
        result["report"] = asyncio.run(run_nodes(t, broker, ["m"], seconds=60, signals=False,
                                                 until=until))

    worker = threading.Thread(target=run)
    worker.start()
    try:
        assert started.wait(60)
        send(t, broker, data[:200], time.time_ns() // 1_000_000 - 100_000)
        done = doa_command("model", "publish", path, "m", str(model), "--note", "doubled",
                           "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        assert b"as version 2" in done.stdout
        send(t, broker, data[200:400], time.time_ns() // 1_000_000 + 1)
        done = doa_command("model", "rollback", path, "m", "1", "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        send(t, broker, data[400:], time.time_ns() // 1_000_000 + 1)
    finally:
        worker.join(90)
    assert not worker.is_alive() and result["report"].stats["m"].dead_letters == 0
    out = by_join(read_stream(broker, t, "scores", expected=600))
    assert sorted(out) == list(range(600)), "a record skipped"
    for i, r in out.items():
        version = 2 if 200 <= i < 400 else 1
        assert (r["model_version"], r["prediction"]) == (
            version, data[i]["age_of_domain"] * version), i
        assert lineage_of(r.headers).model_version == version  # type: ignore[union-attr]
    events = [(e["partition"], e["action"], e["version"]) for e in read_stream(broker, t,
                                                                                "events")]
    assert sorted(events) == [(0, "created", 2), (0, "rollback", 1), (1, "created", 2),
                              (1, "rollback", 1)]
    listed = doa_command("model", "list", path, "m", "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    text = listed.stdout.decode()
    assert "doubled" in text and "rollback" in text and "created" in text
    # a pipe gets each version on one line (rich wrapped the table at 80 columns)
    assert any(" publish " in line and "doubled" in line and " sklearn " in line
               for line in text.replace("│", " ").splitlines()), text


def test_kill_9_while_a_version_is_read_recovers_to_the_right_version(broker: str,
                                                                      tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    data = rows(400)
    big = Scaled(2.0)
    big.padding = bytes(range(256)) * 400  # type: ignore[attr-defined]  # ~100 KB
    chunks = chunk_records("m", 2, pickle.dumps(big), fmt="sklearn", chunk_bytes=1000,
                           publisher="test", published=0, key=None)
    send(t, broker, data[:200], 1_000)
    with Publisher("m.versions", broker=broker, topology=t) as pub:
        for p in (0, 1):
            for c in chunks:
                pub.send(c, partition=p, timestamp_ms=1_200)
    send(t, broker, data[200:], 1_300)
    env = {"DOA_MAX_RECORDS": "8", "DOA_SNAPSHOT_EVERY_RECORDS": "16",
           "DOA_SNAPSHOT_EVERY_MS": "50"}
    outputs = Tail(broker, "scores")
    kills = 0
    for wait_for in (150, None, None):  # just before the switch, then twice at random
        seen = len(outputs.drain(idle_ms=300))
        worker = doa_process("run", path, "--broker", broker, "--quiet", env=env)
        try:
            deadline = time.monotonic() + 30
            target = wait_for if wait_for is not None else seen + 1
            while len(outputs.records) < target and time.monotonic() < deadline:
                outputs.poll(5)
            if wait_for is None:
                time.sleep(0.05 * kills)
        finally:
            kill9(worker)
            kills += 1
    final = EngineSettings.from_env(env)
    asyncio.run(run_nodes(t, broker, ["m"], seconds=60, signals=False, settings=final,
                          until=lambda s: bool(by_join_count(outputs) >= 400)))
    reference = Harness(t, batch_size=8)
    reference.publish("pages", data[:200], timestamps=range(1_000, 1_200))
    for p in (0, 1):
        reference.publish("m.versions", chunks, partition=p, timestamps=[1_200] * len(chunks))
    reference.publish("pages", data[200:], timestamps=range(1_300, 1_500))
    reference.run()
    expected = {lineage_of(r.headers).id: r.value for part in reference.logs["scores"]
                for r in part}
    got: dict[bytes, set[bytes]] = {}
    for m in outputs.drain():
        got.setdefault(lineage_of(m.headers).id, set()).add(m.value)
    assert {i: len(v) for i, v in got.items() if len(v) > 1} == {}, "a repeat changed value"
    assert {i: next(iter(v)) for i, v in got.items()} == expected
    versions = [r["model_version"] for r in reference.records("scores")]
    assert versions.count(1) == 200 and versions.count(2) == 200
    outputs.close()


def by_join_count(outputs: Tail) -> int:
    outputs.poll(5)
    return len({lineage_of(m.headers).id for m in outputs.records})
