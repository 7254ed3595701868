"""The learner on the real broker equals River's progressive_val_score, and survives kill -9."""

from __future__ import annotations

import pytest
from river import linear_model, metrics, preprocessing

from doa.client import Publisher
from doa.engines import EngineSettings
from doa.engines.launch import prepare
from tests.integration.helpers import (
    Tail,
    assert_metric_equals_progressive_val_score,
    drain,
    kill9_runs,
)
from tests.test_learner import phishing, topology

pytestmark = pytest.mark.broker

BASE = 1_700_000_000_000  # record timestamps must be plausible epoch milliseconds


@pytest.mark.parametrize(("delay", "compiled"), [(1, False), (40, False), (40, True)])
def test_learner_on_the_broker_equals_progressive_val_score(broker: str, delay: int,
                                                            compiled: bool) -> None:
    rows = phishing()
    t = topology(preprocessing.StandardScaler() | linear_model.LogisticRegression(),
                 metrics.Accuracy(), "testing.Phish", "testing.PhishLabel", metrics_every=1250,
                 feature_fields=list(rows[0][0]), compiled=compiled)
    assert t.nodes["model"].options["compiled"] is compiled
    prepare(t, broker)
    # Labels are published before the features, so the merge cannot lean on arrival order.
    with Publisher("labels", broker=broker, topology=t) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + delay)
    with Publisher("features", broker=broker, topology=t) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + i)
    report = drain(t, broker, 2 * len(rows), settings=EngineSettings(max_records=100))
    assert report.stats["model"].dead_letters == 0
    assert_metric_equals_progressive_val_score(broker, t, rows, delay)


def test_learner_killed_with_sigkill_ends_with_the_same_model_and_metric(broker: str) -> None:
    import pickle
    import time
    from collections import defaultdict

    from doa.cluster.admin import state_topic
    from doa.runtime.snapshot import latest_snapshot
    from doa.testing import Harness
    from doa.topology.loader import load_topology
    from tests.integration.conftest import ROOT, doa_process, kill9

    learning = str(ROOT / "tests" / "topologies" / "learning.py")
    t = load_topology(learning)
    prepare(t, broker)
    rows = phishing()
    delay = 30
    with Publisher("features", broker=broker, topology=t) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + i)
    with Publisher("labels", broker=broker, topology=t) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + delay)

    env = {"DOA_MAX_RECORDS": "20", "DOA_SNAPSHOT_EVERY_RECORDS": "150",
           "DOA_SNAPSHOT_EVERY_MS": "200"}
    outcomes = Tail(broker, "outcomes")
    kill9_runs(learning, broker, env, outcomes, seed=5, timeout=30)
    final = doa_process("run", learning, "--broker", broker, "-q", env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        outcomes.poll(200)
        if len({m.value for m in outcomes.records}) >= len(rows):
            break
    # Every outcome may have come from a killed worker: wait until a snapshot covers every
    # label too (written by it or by the final worker), then stop the final one.
    states = Tail(broker, state_topic(t, "model"))
    while time.monotonic() < deadline:
        states.poll(200)
        snap = latest_snapshot([m.value for m in states.records if m.partition == 0])
        if snap is not None and snap.state["labels"] == len(rows):
            break
    states.close()
    import os
    import signal
    import subprocess

    from tests.integration.helpers import wait_until

    # A killed worker may have written everything already, so the final one can still be
    # starting (importing River and Numba) here: stop it only once it handles SIGTERM.
    assert wait_until(lambda: _catches_sigterm(final.pid) or final.poll() is not None, 60)

    os.killpg(final.pid, signal.SIGTERM)
    # communicate, not wait: nobody else reads its pipes, and a run that wrote more than a
    # pipe holds (64 KiB of warnings under load) would block there and never exit
    try:
        _, err = final.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill9(final)
        _, err = final.communicate()
        raise AssertionError("the final run did not stop within 60 s of SIGTERM: "
                             + err.decode(errors="replace")[-2000:]) from None
    assert final.returncode == 0, err.decode(errors="replace")[-2000:]

    reference = Harness(t)
    reference.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
                      timestamps=[BASE + i for i in range(len(rows))])
    reference.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
                      timestamps=[BASE + i + delay for i in range(len(rows))])
    reference.run()
    expected = reference.state("model")[0]

    snapshots = Tail(broker, state_topic(t, "model"))
    values = defaultdict(list)
    for m in snapshots.drain():
        values[m.partition].append(m.value)
    snap = latest_snapshot(values[0])
    assert snap is not None
    assert snap.state["labels"] == len(rows)
    assert snap.state["metric"].get() == expected["metric"].get()
    got, want = snap.state["model"], expected["model"]
    assert dict(got["LogisticRegression"].weights) == dict(want["LogisticRegression"].weights)
    assert got["LogisticRegression"].intercept == want["LogisticRegression"].intercept
    assert dict(got["StandardScaler"].vars) == dict(want["StandardScaler"].vars)

    def canonical(model: object) -> bytes:
        # An unpickled object graph shares strings differently (pickle memo); one round trip
        # on both sides compares content, not object identity.
        return pickle.dumps(pickle.loads(pickle.dumps(model)))

    assert canonical(got) == canonical(want)
    # every outcome id carries one value, and all of them are there
    by_id = defaultdict(set)
    from doa.events import lineage_of

    for m in outcomes.drain(500):
        by_id[lineage_of(m.headers).id].add(m.value)
    assert len(by_id) == len(rows) and all(len(v) == 1 for v in by_id.values())
    outcomes.close()
    snapshots.close()


def _catches_sigterm(pid: int) -> bool:
    """Whether process ``pid`` has a SIGTERM handler installed (its SigCgt mask in /proc)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            caught = next(line for line in f if line.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(caught.split()[1], 16) & (1 << (15 - 1)))
