"""Labels held for their features survive kill -9 (issue 16), on the real broker.

Every label is published before any feature, so the learner (``tests/topologies/learning.py``
run by ``doa run``) can only hold them in its state (``state["early"]``), snapshotted with the
input offsets. The worker is killed with SIGKILL three times: once as soon as a snapshot holds
labels (it may still be reading them), once when a snapshot holds every label, and once while
the first half of the features is being matched (the second half of the labels still held
whatever the moment). Then the rest of the features is published and a last worker runs to the
end. Every label must be learned exactly once, none reported unmatched, and the final metric
must equal the run that never crashed: the in-memory harness on the same records and
River's ``progressive_val_score`` with ``delay=None`` (each label learned right after its
prediction, which is what a held label gets once its features come).

Labels carry their features' timestamps (delay 0: ties go label-first), so the order of
learning is the same whether the merge sees a label before its features (held) or not: the
reference does not depend on where the kills land.
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
from river import evaluate, linear_model, metrics, preprocessing

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.runtime.snapshot import Snapshot, latest_snapshot
from doa.testing import Harness
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import ROOT, kill9
from tests.integration.helpers import Tail
from tests.test_learner import phishing

pytestmark = pytest.mark.broker

LEARNING = str(ROOT / "tests" / "topologies" / "learning.py")
BASE = 1_700_000_000_000  # plausible epoch milliseconds
N = 1200  # labels (a multiple of the topology's metrics_every=100: the last metric covers all)
ENV = {"DOA_MAX_RECORDS": "20", "DOA_SNAPSHOT_EVERY_RECORDS": "60",
       "DOA_SNAPSHOT_EVERY_MS": "100"}
WAIT_S = 180.0  # bounds a failure only; every wait below polls for a condition


def _publish(broker: str, t: Topology, stream: str, records: list[dict[str, Any]],
             first: int) -> None:
    with Publisher(stream, broker=broker, topology=t) as pub:
        for i, rec in enumerate(records, start=first):
            pub.send(rec, timestamp_ms=BASE + i)


def _latest(states: Tail) -> Snapshot | None:
    states.poll(100)
    return latest_snapshot([m.value for m in states.records if m.partition == 0])


def _wait_for_snapshot(states: Tail, worker: subprocess.Popen[bytes], logs: Path,
                       condition: Callable[[Snapshot], bool], what: str) -> Snapshot:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        snap = _latest(states)
        if snap is not None and condition(snap):
            return snap
        if worker.poll() is not None:
            raise AssertionError(f"doa run exited ({worker.returncode}) before a snapshot "
                                 f"{what}: {_stderr(worker, logs)}")
    raise AssertionError(f"no snapshot {what} within {WAIT_S} s; latest: "
                         f"{_describe(_latest(states))}; doa run: {_stderr(worker, logs)}")


def _describe(snap: Snapshot | None) -> str:
    if snap is None:
        return "none"
    return (f"seq {snap.seq} offsets {snap.offsets} labels learned {snap.state['labels']} "
            f"held {len(snap.state['early'])} pending {len(snap.state['pending'])}")


def _worker(broker: str, logs: Path) -> subprocess.Popen[bytes]:
    """``doa run`` of the learning topology, its output appended to ``logs`` (a file, not a
    pipe: nobody reads a pipe while the test waits, and a full pipe would stall the worker)."""
    with logs.open("ab") as out:
        out.write(b"--- doa run\n")
        out.flush()
        return subprocess.Popen(
            [sys.executable, "-m", "doa.cli.app", "run", LEARNING, "--broker", broker],
            cwd=ROOT, env={**os.environ, **ENV}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)


def _stderr(worker: subprocess.Popen[bytes], logs: Path) -> str:
    """The end of what the workers wrote (``worker`` is the one that failed)."""
    return f"pid {worker.pid}: " + logs.read_text(errors="replace")[-3000:]


def _records_in(broker: str, stream: str) -> int:
    """How many records ``stream`` holds (its end offsets: 0 only if nothing was written)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker)
    try:
        tps = [TopicPartition(stream, p) for p in consumer.partitions_for_topic(stream) or []]
        assert tps, f"no stream {stream!r} on the broker"
        return sum(consumer.end_offsets(tps).values())
    finally:
        consumer.close()


def _final_metrics(broker: str, t: Topology) -> list[dict[str, Any]]:
    """Every metric record that covers all ``N`` labels (repeats of one are allowed)."""
    codec = t.codec("metrics")
    deadline = time.monotonic() + WAIT_S
    with Tail(broker, "metrics") as tail:
        while time.monotonic() < deadline:
            tail.poll(200)
            found = [codec.decode(m.value) for m in tail.records]
            if any(r["labels"] == N for r in found):
                return [dict(r) for r in found if r["labels"] == N]
    raise AssertionError(f"no metric record for {N} labels within {WAIT_S} s")


def _ids_by_join(t: Topology, stream: str, tail: Tail) -> tuple[Counter[str], list[bytes]]:
    """How many distinct lineage ids each join value has in ``stream`` (read by ``tail``),
    and the ids that appear with more than one value (a repeat must be the same record)."""
    codec = t.codec(stream)
    values: dict[bytes, set[bytes]] = defaultdict(set)
    for m in tail.drain(500):
        lineage = lineage_of(m.headers)
        assert lineage is not None, "an output without a lineage header"
        values[lineage.id].add(m.value)
    changed = [i for i, v in values.items() if len(v) > 1]
    joins = Counter(codec.decode(next(iter(v)))["join"] for v in values.values())
    return joins, changed


def test_labels_held_at_kill_9_are_matched_after_restart_once_each(broker: str,
                                                                  tmp_path: Path) -> None:
    t = load_topology(LEARNING)
    prepare(t, broker)
    rows = phishing()[:N]
    _publish(broker, t, "labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)], 0)

    with Tail(broker, state_topic(t, "model")) as states, Tail(broker, "outcomes") as outcomes, \
            Tail(broker, "predictions") as predictions:
        _run_and_check(broker, t, rows, states, outcomes, predictions, tmp_path / "doa.log")


def _run_and_check(broker: str, t: Topology, rows: list[tuple[dict[str, float], bool]],
                   states: Tail, outcomes: Tail, predictions: Tail, logs: Path) -> None:
    features = [{"id": i, **x} for i, (x, _) in enumerate(rows)]
    labels = [{"id": i, "label": y} for i, (_, y) in enumerate(rows)]
    worker: subprocess.Popen[bytes] | None = None
    held_at_kill: list[int] = []
    try:
        # kill 1: as soon as a snapshot holds labels (the worker may still be reading them)
        worker = _worker(broker, logs)
        snap = _wait_for_snapshot(states, worker, logs, lambda s: len(s.state["early"]) > 0,
                                  "holding labels")
        kill9(worker)
        held_at_kill.append(len(snap.state["early"]))

        # kill 2: every label read and held, none learned (no feature exists yet)
        worker = _worker(broker, logs)
        snap = _wait_for_snapshot(states, worker, logs, lambda s: s.offsets.get("labels") == N,
                                  "covering every label")
        kill9(worker)
        assert len(snap.state["early"]) == N, _describe(snap)
        assert snap.state["labels"] == 0 and not snap.state["pending"], _describe(snap)
        held_at_kill.append(len(snap.state["early"]))

        # kill 3: while the first half of the features is being matched
        half = N // 2
        outcomes.drain(300)
        seen = len(outcomes.records)
        worker = _worker(broker, logs)
        _publish(broker, t, "features", features[:half], 0)
        deadline = time.monotonic() + WAIT_S
        while len(outcomes.records) < seen + half // 3:
            outcomes.poll(50)
            assert worker.poll() is None, _stderr(worker, logs)
            assert time.monotonic() < deadline, f"no outcomes within {WAIT_S} s"
        kill9(worker)
        states.drain(300)  # every snapshot the killed worker wrote
        at_kill = _latest(states)
        assert at_kill is not None
        # the second half of the labels cannot have met its features: still held
        assert len(at_kill.state["early"]) >= N - half, _describe(at_kill)
        held_at_kill.append(len(at_kill.state["early"]))
        learned_at_kill = at_kill.state["labels"]

        # the rest of the features; the last worker runs to the end and stops gracefully
        worker = _worker(broker, logs)
        _publish(broker, t, "features", features[half:], half)
        _wait_for_snapshot(states, worker, logs, lambda s: s.state["labels"] == N,
                           "with every label learned")
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=WAIT_S)
        assert worker.returncode == 0, _stderr(worker, logs)
        worker = None
    finally:
        if worker is not None and worker.poll() is None:
            kill9(worker)

    # --- the state: everything matched, nothing held or waiting ------------------------------
    states.drain(300)
    final = _latest(states)
    assert final is not None
    assert final.offsets == {"labels": N, "features": N}
    assert final.state["labels"] == N
    assert not final.state["early"] and not final.state["pending"], _describe(final)

    # --- outputs: every join value predicted once and learned once (repeats: same id) -------
    learned, changed = _ids_by_join(t, "outcomes", outcomes)
    assert not changed, "an outcome id repeated with another value"
    assert learned == Counter({str(i): 1 for i in range(N)})
    predicted, changed = _ids_by_join(t, "predictions", predictions)
    assert not changed, "a prediction id repeated with another value"
    assert predicted == Counter({str(i): 1 for i in range(N)})
    assert _records_in(broker, "unmatched") == 0

    # --- the metric equals the run that never crashed ----------------------------------------
    reference = Harness(t)
    reference.publish("labels", labels, timestamps=[BASE + i for i in range(N)])
    reference.publish("features", features, timestamps=[BASE + i for i in range(N)])
    reference.run()
    expected = reference.state("model")[0]
    river = evaluate.progressive_val_score(
        cast(Any, rows), preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=None)  # type: ignore[no-untyped-call]
    assert expected["labels"] == N
    assert expected["metric"].get() == pytest.approx(river.get(), abs=1e-12, rel=0)

    for last in _final_metrics(broker, t):
        assert last["value"] == pytest.approx(river.get(), abs=1e-12, rel=0)
    assert final.state["metric"].get() == pytest.approx(river.get(), abs=1e-12, rel=0)

    def canonical(model: object) -> bytes:
        # one pickle round trip on both sides: compares content, not string sharing
        return pickle.dumps(pickle.loads(pickle.dumps(model)))

    assert canonical(final.state["model"]) == canonical(expected["model"])
    print(f"\nlabels held at the three kills: {held_at_kill} (learned at the third: "
          f"{learned_at_kill}); outcome records "
          f"{len(outcomes.records)} for {N} labels; prediction records "
          f"{len(predictions.records)} for {N} features")
