"""State survives kill -9 (DESIGN invariant 3), on the real broker, with a real worker process.

A counting worker is killed with SIGKILL six times while it processes 20,000 records: three
times at random moments, three times right after it wrote the first chunk of a multi-chunk
snapshot. After a final run the recovered state must equal the state of a run that never
crashed (the in-memory harness on the same inputs), every input must be counted exactly once,
and outputs may repeat only with the same event id and the same value.
"""

from __future__ import annotations

import random
import time
from collections import defaultdict
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.runtime.snapshot import _head, latest_snapshot
from doa.testing import Harness
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process, kill9
from tests.integration.helpers import Tail

pytestmark = pytest.mark.broker

N = 20_000
WORKER_ENV = {
    "DOA_MAX_RECORDS": "100",
    "DOA_SNAPSHOT_EVERY_RECORDS": "400",
    "DOA_SNAPSHOT_EVERY_MS": "300",
    "DOA_CHUNK_SIZE": "32768",
    "DOA_TEST_PAD": "200000",  # ~7 chunks per snapshot
}


def _worker(address: str):  # type: ignore[no-untyped-def]
    return doa_process("run", COUNTING, "--broker", address, "--quiet", env=WORKER_ENV)


def _wait_for_progress(outputs: Tail, seen: int, timeout: float = 30.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        outputs.poll()
        if len(outputs.records) > seen:
            return time.monotonic() - start
    raise AssertionError("the restarted worker produced nothing")


def test_kill_9_loses_nothing_and_counts_everything_once(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    rnd = random.Random(11)
    inputs = [{"key": f"k{rnd.randrange(40)}", "n": i, "payload": ""} for i in range(N)]
    with Publisher("events", broker=broker, topology=topology) as pub:
        for rec in inputs:
            pub.send(rec)

    outputs = Tail(broker, "counts")
    snapshots = Tail(broker, state_topic(topology, "count"))
    recoveries, torn_kills, kills = [], 0, 0
    for kill in range(10):  # six kills, more (up to ten) until one has landed inside a snapshot
        outputs.drain(idle_ms=300)  # everything the killed worker wrote is counted as seen
        seen = len(outputs.records)
        worker = _worker(broker)
        try:
            recoveries.append(_wait_for_progress(outputs, seen))
            if kill % 2 == 0:  # a random moment
                time.sleep(rnd.uniform(0.05, 0.6))
            else:  # right after the first chunk of a snapshot of several chunks
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    seen_before = len(snapshots.records)
                    snapshots.poll(5)
                    if any((h := _head(m.value)) and h[1] == 0 and h[2] > 1
                           for m in snapshots.records[seen_before:]):
                        break
                torn_kills += 1
        finally:
            kill9(worker)
            kills += 1
        outputs.poll()
        snapshots.poll(5)
        done = len({lineage_of(m.headers).id for m in outputs.records}) >= N
        if kill >= 5 and (done or _torn_snapshots(_by_partition(snapshots.records)) >= 1):
            break  # every input counted, or a torn snapshot seen: enough kills

    final = _worker(broker)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            outputs.poll(200)
            ids = {lineage_of(m.headers).id for m in outputs.records}
            if len(ids) >= N:
                break
        time.sleep(1.0)
    finally:
        import os
        import signal

        os.killpg(final.pid, signal.SIGTERM)  # graceful: finish, snapshot, commit
        final.wait(timeout=30)
    assert final.returncode == 0, final.stderr.read().decode()[-2000:] if final.stderr else ""

    # --- outputs: at least once, duplicates only with the same id and the same value ---------
    by_id: dict[bytes, set[bytes]] = defaultdict(set)
    for m in outputs.drain():
        by_id[lineage_of(m.headers).id].add(m.value)
    changed = {i: v for i, v in by_id.items() if len(v) > 1}
    codec = topology.codec("counts")
    assert not changed, ("a repeated id changed value: "
                         f"{[[codec.decode(x) for x in v] for v in list(changed.values())[:3]]}")

    reference = Harness(topology, batch_size=100)
    reference.publish("events", inputs)
    reference.run()
    expected = {lineage_of(r.headers).id: r.value
                for part in reference.logs["counts"] for r in part}
    assert {i: next(iter(v)) for i, v in by_id.items()} == expected

    # --- state: equal to the run that never crashed; every input counted once ---------------
    values = _by_partition(snapshots.drain())
    torn = _torn_snapshots(values)
    assert torn >= 1, "no kill landed inside a snapshot; the test did not test that case"
    for p, state in reference.state("count").items():
        snap = latest_snapshot(values[p])
        assert snap is not None
        assert snap.state["keys"] == state["keys"]
        assert snap.offsets == {"events": len(reference.logs["events"][p])}
    total = sum(c for st in reference.state("count").values() for c, _ in st["keys"].values())
    assert total == N
    print(f"\nrecovery after kill -9 (restart to first new output), s: "
          f"{[round(r, 2) for r in recoveries]}; torn snapshots: {torn}; "
          f"duplicated outputs: {sum(1 for m in outputs.records) - N}")
    outputs.close()
    snapshots.close()
    assert torn_kills >= 3
    # Restarts resume from snapshots (taken every 400 records per partition): a kill can
    # repeat at most about a snapshot interval per partition plus a batch, not everything.
    assert len(outputs.records) - N < kills * (4 * 400 + 100)


def _by_partition(messages: list[Any]) -> dict[int, list[bytes]]:
    values: dict[int, list[bytes]] = defaultdict(list)
    for m in messages:
        values[m.partition].append(m.value)
    return values


def _torn_snapshots(values: dict[int, list[bytes]]) -> int:
    """How many snapshots were started but never finished (their last chunk is missing)."""
    torn = 0
    for partition_values in values.values():
        open_seq = None
        for v in partition_values:
            h = _head(v)
            assert h is not None
            seq, index, count = h
            if index == 0:
                if open_seq is not None:
                    torn += 1
                open_seq = seq if count > 1 else None
            elif index == count - 1:
                open_seq = None
        torn += open_seq is not None
    return torn
