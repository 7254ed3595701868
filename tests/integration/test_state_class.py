"""A node whose state is an instance of a class its topology file defines (a dataclass, the
natural way to write one) restores it in the next run, also from a moved project; a snapshot
that no longer unpickles stops the node with one line naming it.

Before, the topology file was imported under a module name made with the salted ``hash()``:
each process pickled the class under another name, so the next run could not unpickle its
own snapshot. The error was raised in aiokafka's rebalance callback, which only logs it: the
node sat idle, silent, records waiting (walk: 0 in, 0 out, for as long as it ran).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT, doa_process
from tests.integration.helpers import Lines, Tail, wait_until

pytestmark = pytest.mark.broker

TOPOLOGY = '''
from __future__ import annotations
from dataclasses import dataclass, field
from typing import Any
from doa import Topology

topology = Topology("tally", schemas="schemas")
events = topology.stream("events", schema="testing.Event", key="key", partitions=2)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=2)


@dataclass
class Tally:
    keys: dict[str, Any] = field(default_factory=dict)


@topology.node(reads=events, writes=counts, state=Tally)
def count(state: Tally, batch: list[Any]) -> tuple[Any, list[Any]]:
    out = []
    for e in batch:
        c, t = state.keys.get(e["key"], (0, 0))
        state.keys[e["key"]] = (c + 1, t + e["n"])
        out.append((e, {"key": e["key"], "n": e["n"], "count": c + 1, "total": t + e["n"]}))
    return state, out
'''
N = 60


def _project(where: Path) -> Path:
    where.mkdir(parents=True)
    shutil.copytree(ROOT / "tests" / "schemas", where / "schemas")
    (where / "tally.py").write_text(TOPOLOGY)
    return where / "tally.py"


def _publish(broker: str, path: Path, start: int) -> None:
    t = load_topology(str(path))
    with Publisher("events", broker=broker, topology=t) as pub:
        for i in range(start, start + N):
            pub.send({"key": f"k{i % 5}", "n": i, "payload": ""})


def _run_until(broker: str, path: Path, seed: str, total: int) -> None:
    """``doa run`` in its own process (hash seed ``seed``) until ``counts`` holds ``total``."""
    proc = doa_process("run", str(path), "--broker", broker, "-q",
                       env={"PYTHONHASHSEED": seed})
    lines = Lines(proc)
    try:
        with Tail(broker, "counts") as counts:
            ok = wait_until(lambda: counts.poll(50) >= 0 and len(counts.records) >= total, 90)
            assert ok, lines.text()
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0, lines.text()


@pytest.mark.brokers("tansu",
                     reason="pickling is the process's, not the broker's; snapshots are tested "
                            "on both; CI time")
def test_a_dataclass_state_survives_restarts_and_a_moved_project(
        broker: str, tmp_path: Path) -> None:
    path = _project(tmp_path / "first")
    prepare(load_topology(str(path)), broker)
    _publish(broker, path, 0)
    _run_until(broker, path, "1", N)
    _publish(broker, path, N)
    _run_until(broker, path, "2", 2 * N)  # another process: another salted hash
    moved = _project(tmp_path / "elsewhere" / "checkout")  # the same code, another path
    _publish(broker, moved, 2 * N)
    _run_until(broker, moved, "3", 3 * N)
    codec = load_topology(str(path)).codec("counts")
    with Tail(broker, "counts") as tail:
        records = tail.drain(1500)
    per_key: dict[str, list[int]] = defaultdict(list)
    for m in records:
        r = codec.decode(m.value)
        per_key[r["key"]].append(r["count"])
    # Counting on from each restored snapshot: each key's counts 1..36, once each.
    assert {k: sorted(v) for k, v in per_key.items()} == {
        f"k{j}": list(range(1, 3 * N // 5 + 1)) for j in range(5)}


@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="the engine's own path; tansu is enough; CI time")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_snapshot_of_a_class_that_is_gone_stops_the_node_with_one_line(
        broker: str, engine: str, tmp_path: Path) -> None:
    path = _project(tmp_path / "p")
    prepare(load_topology(str(path)), broker)
    _publish(broker, path, 0)
    _run_until(broker, path, "1", N)
    path.write_text(TOPOLOGY.replace("Tally", "Counts"))  # the class renamed
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "doa.cli.app", "run", str(path), "--broker", broker, "-q",
         "--for", "90s", "--engine", engine],
        cwd=ROOT, capture_output=True, timeout=120, check=False)
    took = time.monotonic() - began
    err = proc.stderr.decode()
    assert proc.returncode == 1, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert errors[0].startswith(
        "error: node 'count': state topic 'tally.count.state' partition "), errors
    assert "cannot be restored: AttributeError: Can't get attribute 'Tally'" in errors[0]
    assert took < 45, f"{took:.1f} s to say so"
