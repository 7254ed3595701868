"""Chained nodes (doa.engines.chain) on a real broker: the produce acknowledgements give each
output's true offset; a learner fed in memory by the node before it equals River's
progressive_val_score; a chained pair killed with SIGKILL recovers to the state of a run that
never crashed."""

from __future__ import annotations

import asyncio
import random
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer
from river import evaluate, linear_model, metrics, preprocessing

from doa.client import Publisher
from doa.cluster.admin import TopicSpec, ensure_topics, state_topic
from doa.engines import EngineSettings, NodeStats
from doa.engines.delivery import deliver
from doa.engines.launch import prepare
from doa.runtime.runner import OutRecord
from doa.runtime.snapshot import latest_snapshot
from doa.testing import Harness
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import drain, raw_records, read_stream
from tests.integration.test_kill9 import Log
from tests.test_learner import phishing
from tests.topologies.chained import build

pytestmark = pytest.mark.broker

CHAINED = str(ROOT / "tests" / "topologies" / "chained.py")
BASE = 1_700_000_000_000


def test_deliver_returns_the_offset_each_output_got_in_the_log(broker: str) -> None:
    """Batched and single sends (a record over half a batch goes alone), two partitions,
    two deliveries: every returned offset holds that very record."""
    asyncio.run(ensure_topics(broker, [TopicSpec("out", 2)]))

    async def run() -> list[tuple[OutRecord, int]]:
        producer = AIOKafkaProducer(bootstrap_servers=broker, max_batch_size=16 * 1024,
                                    linger_ms=5)
        await producer.start()
        try:
            done: list[tuple[OutRecord, int]] = []
            for round_ in range(2):
                outs = [OutRecord("out", i % 2, None,
                                  (b"x" * 9000 if i % 97 == 5 else b"") + f"{round_}/{i}".encode(),
                                  BASE + i, ()) for i in range(700)]
                offsets = await deliver(producer, outs, NodeStats(), "test")
                done.extend(zip(outs, offsets, strict=True))
            return done
        finally:
            await producer.stop()

    done = asyncio.run(run())
    log = raw_records(broker, "out")
    assert len(log) == len(done) == 1400
    assert all(log[(out.partition, offset)] == out.value for out, offset in done)


def _publish(topology_: object, broker: str, rows: list[tuple[dict[str, float], bool]],
             delay: int) -> None:
    with Publisher("labels", broker=broker, topology=topology_) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + delay)
    with Publisher("raw", broker=broker, topology=topology_) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + i)


def test_a_learner_fed_in_memory_equals_progressive_val_score(broker: str) -> None:
    rows = phishing()
    delay = 40
    t = build(1, schemas=ROOT / "tests" / "schemas", metrics_every=len(rows))
    prepare(t, broker)
    _publish(t, broker, rows, delay)
    report = drain(t, broker, 3 * len(rows), settings=EngineSettings(max_records=100))
    model = report.stats["model"]
    assert model.dead_letters == 0 and report.stats["prep"].records_in == len(rows)
    # the learner took features from the prep node in memory (those that came before its
    # assignment was loaded came from the broker)
    assert model.handed_in > len(rows) // 2
    assert report.stats["prep"].handed_in == 0
    reference = evaluate.progressive_val_score(
        rows, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=delay)
    [final] = read_stream(broker, t, "metrics", 1)
    assert final["labels"] == len(rows)
    assert final["value"] == pytest.approx(reference.get(), abs=1e-12, rel=0)
    assert read_stream(broker, t, "unmatched", idle_s=1) == []


def test_a_chained_pair_killed_with_sigkill_ends_as_a_run_that_never_crashed(broker: str
                                                                              ) -> None:
    t = load_topology(CHAINED)
    prepare(t, broker)
    rows = phishing()
    delay = 30
    _publish(t, broker, rows, delay)
    env = {"DOA_MAX_RECORDS": "20", "DOA_SNAPSHOT_EVERY_RECORDS": "150",
           "DOA_SNAPSHOT_EVERY_MS": "200"}
    outcomes = Log(broker, "outcomes")
    rnd = random.Random(11)
    for _ in range(3):
        worker = doa_process("run", CHAINED, "--broker", broker, "-q", env=env)
        seen = len(outcomes.drain(300))
        deadline = time.monotonic() + 60
        while len(outcomes.records) <= seen + 50 and time.monotonic() < deadline:
            outcomes.poll(50)
        time.sleep(rnd.uniform(0.0, 0.3))
        kill9(worker)
    final = doa_process("run", CHAINED, "--broker", broker, "-q", env=env)
    try:
        # done when both partitions' learner snapshots cover every label of their partition
        # (and the prep node's every row)
        reference = Harness(load_topology(CHAINED))
        reference.publish("raw", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
                          timestamps=[BASE + i for i in range(len(rows))])
        reference.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
                          timestamps=[BASE + i + delay for i in range(len(rows))])
        reference.run()
        want = {p: reference.state("model")[p] for p in (0, 1)}
        assert sum(s["labels"] for s in want.values()) == len(rows)
        states = Log(broker, state_topic(t, "model"))
        got: dict[int, object] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(got) < 2:
            states.poll(200)
            values: dict[int, list[bytes]] = defaultdict(list)
            for m in states.records:
                values[m.partition].append(m.value)
            for p in (0, 1):
                snap = latest_snapshot(values[p])
                if snap is not None and snap.state["labels"] == want[p]["labels"]:
                    got[p] = snap.state
        states.close()
    finally:
        kill9(final)
    assert sorted(got) == [0, 1]
    for p in (0, 1):
        g, w = got[p], want[p]
        assert g["metric"].get() == w["metric"].get()  # type: ignore[index]
        lr_g, lr_w = g["model"]["LogisticRegression"], w["model"]["LogisticRegression"]  # type: ignore[index]
        assert dict(lr_g.weights) == dict(lr_w.weights)
        assert lr_g.intercept == lr_w.intercept
    # every outcome id carries one value (replays wrote the same ids with the same values)
    by_id: dict[bytes, set[bytes]] = defaultdict(set)
    from doa.events import lineage_of

    for m in outcomes.drain(500):
        lin = lineage_of(m.headers)
        assert lin is not None
        by_id[lin.id].add(m.value)
    outcomes.close()
    assert len(by_id) == len(rows)
    assert all(len(v) == 1 for v in by_id.values())
