"""Chained nodes (doa.engines.chain) on a real broker: the produce acknowledgements give each
output's true offset; a learner fed in memory by the node before it equals River's
progressive_val_score; a chained pair killed with SIGKILL recovers to the state of a run that
never crashed."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaProducer

from doa.client import Publisher
from doa.cluster.admin import TopicSpec, ensure_topics, state_topic
from doa.engines import EngineSettings, NodeStats
from doa.engines.delivery import deliver
from doa.engines.launch import prepare, run_nodes
from doa.events import key_bytes, partition_for
from doa.runtime.runner import OutRecord
from doa.runtime.snapshot import latest_snapshot
from doa.testing import Harness
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import (
    Tail,
    assert_metric_equals_progressive_val_score,
    drain,
    kill9_runs,
    raw_records,
    read_stream,
)
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


# The learner releases a label only once a feature with a later timestamp is there to compare
# it with (the merge's idle wait is made longer than any test): the order it learns in is then
# the timestamps' whatever the timing. While the prep node restarts, its stream is idle and
# caught up; with the default 20 ms wait a label could go ahead of its features, be held, and
# the learner would learn in another (valid, live) order than the reference's.
NO_IDLE = 600_000


def _publish(topology_: Topology, broker: str, rows: list[tuple[dict[str, float], bool]],
             delay: int) -> list[dict[str, float]]:
    """Labels, then the rows (time i ms, label at i + delay), then one last row per partition
    past every label (it has no label) so that every label has a later feature. Returns the
    rows as published to ``raw``."""
    partitions = topology_.streams["raw"].partitions
    raw = [{"id": i, **x} for i, (x, _) in enumerate(rows)]
    last: dict[int, int] = {}
    i = len(rows)
    while len(last) < partitions:
        last.setdefault(partition_for(key_bytes(i), partitions), i)
        i += 1
    raw += [{"id": i, **rows[0][0]} for i in sorted(last.values())]
    with Publisher("labels", broker=broker, topology=topology_) as pub:
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + delay)
    with Publisher("raw", broker=broker, topology=topology_) as pub:
        for i, r in enumerate(raw):
            pub.send(r, timestamp_ms=BASE + i + (10 * delay if i >= len(rows) else 0))
    return raw


def test_a_learner_fed_in_memory_equals_progressive_val_score(broker: str) -> None:
    rows = phishing()
    delay = 40
    t = build(1, schemas=ROOT / "tests" / "schemas", metrics_every=len(rows))
    prepare(t, broker)
    raw = _publish(t, broker, rows, delay)
    report = drain(t, broker, len(raw) + 2 * len(rows),
                   settings=EngineSettings(max_records=100, max_idle_ms=NO_IDLE, chain=1))
    model = report.stats["model"]
    assert model.dead_letters == 0 and report.stats["prep"].records_in == len(raw)
    # the learner took features from the prep node in memory (those that came before its
    # assignment was loaded came from the broker: how many depends on the machine's load, a
    # CI run under load saw 100 of 1,250 handed over; the metric below is the claim)
    assert model.handed_in > 0
    assert report.stats["prep"].handed_in == 0
    assert_metric_equals_progressive_val_score(broker, t, rows, delay)


def test_a_chained_pair_killed_with_sigkill_ends_as_a_run_that_never_crashed(broker: str
                                                                              ) -> None:
    t = load_topology(CHAINED)
    prepare(t, broker)
    rows = phishing()
    delay = 30
    raw = _publish(t, broker, rows, delay)
    env = {"DOA_MAX_RECORDS": "20", "DOA_SNAPSHOT_EVERY_RECORDS": "150",
           "DOA_SNAPSHOT_EVERY_MS": "200", "DOA_MAX_IDLE_MS": str(NO_IDLE), "DOA_CHAIN": "1"}
    outcomes = Tail(broker, "outcomes")
    kill9_runs(CHAINED, broker, env, outcomes, seed=11)
    final = doa_process("run", CHAINED, "--broker", broker, "-q", env=env)
    try:
        # done when both partitions' learner snapshots cover every label of their partition
        # (and the prep node's every row)
        reference = Harness(load_topology(CHAINED))
        reference.publish("raw", raw[:len(rows)], timestamps=[BASE + i for i in range(len(rows))])
        reference.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
                          timestamps=[BASE + i + delay for i in range(len(rows))])
        reference.run()
        want = {p: reference.state("model")[p] for p in (0, 1)}
        assert sum(s["labels"] for s in want.values()) == len(rows)
        states = Tail(broker, state_topic(t, "model"))
        got: dict[int, object] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and len(got) < 2:
            states.poll(200)
            values: dict[int, list[bytes]] = defaultdict(list)
            for m in states.records:
                values[m.partition].append(m.value)
            latest = {p: latest_snapshot(values[p]) for p in (0, 1)}
            for p, snap in latest.items():
                if snap is not None and snap.state["labels"] == want[p]["labels"]:
                    got[p] = snap.state
        states.close()
    finally:
        kill9(final)
    assert sorted(got) == [0, 1], [
        (p, s.offsets, s.state["labels"], want[p]["labels"], len(s.state["pending"]),
         len(s.state["early"])) for p, s in latest.items() if s is not None]
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


def test_records_another_writer_adds_between_hand_overs_are_fetched(broker: str) -> None:
    """A service writes to the chained stream too: the downstream sees a gap in the hand-overs
    (or none come for a while), fetches from the broker again, and counts every record once."""
    import threading

    from doa import Topology

    t = Topology("mixed", schemas=ROOT / "tests" / "schemas")
    t.stream("in", schema="testing.Event", key="key", partitions=2)
    t.stream("mid", schema="testing.Event", key="key", partitions=2)
    t.stream("out", schema="testing.Count", key="key", partitions=2)

    @t.node(reads="in", writes="mid", state=lambda: 0)
    def copy(state: int, batch: list) -> tuple:  # type: ignore[type-arg]
        return state + len(batch), [(e, dict(e)) for e in batch]

    @t.node(reads="mid", writes="out", state=dict)
    def count(state: dict, batch: list) -> tuple:  # type: ignore[type-arg]
        out = []
        for e in batch:
            c, total = state.get(e["key"], (0, 0))
            state[e["key"]] = c, total = c + 1, total + e["n"]
            out.append((e, {"key": e["key"], "n": e["n"], "count": c, "total": total}))
        return state, out

    prepare(t, broker)
    waves, per_wave = 5, 300
    sent: list[dict[str, object]] = []

    stats: dict[str, NodeStats] = {}

    def publish() -> None:
        n = 0
        deadline = time.monotonic() + 60  # publish once both nodes have their partitions
        while time.monotonic() < deadline and not (
                stats and all(s.partitions == 2 for s in stats.values())):
            time.sleep(0.05)
        with Publisher("in", broker=broker, topology=t) as into, \
                Publisher("mid", broker=broker, topology=t) as beside:
            for w in range(waves):
                for _ in range(per_wave):
                    record = {"key": f"k{n % 7}", "n": n, "payload": ""}
                    into.send(record)
                    sent.append(record)
                    n += 1
                into.flush()
                time.sleep(0.4 if w % 2 else 1.5)  # a pause longer than Pauses.RESUME_AFTER_S
                for _ in range(20):  # written straight to the chained stream
                    record = {"key": f"k{n % 7}", "n": n, "payload": "beside"}
                    beside.send(record)
                    sent.append(record)
                    n += 1
                beside.flush()

    writer = threading.Thread(target=publish)
    writer.start()
    total = waves * (per_wave + 20)

    def done(current: dict[str, NodeStats]) -> bool:
        stats.update(current)
        return sum(s.records_in for s in current.values()) >= waves * per_wave + total

    report = asyncio.run(run_nodes(t, broker, list(t.nodes), seconds=120, signals=False,
                                   until=done, settings=EngineSettings(chain=1)))
    writer.join()
    assert report.stats["count"].records_in == total  # nothing stranded, nothing twice
    assert report.stats["count"].handed_in > 0
    expected: dict[str, tuple[int, int]] = {}
    for r in sent:
        c, s = expected.get(str(r["key"]), (0, 0))
        expected[str(r["key"])] = (c + 1, s + int(r["n"]))  # type: ignore[call-overload]
    last: dict[str, tuple[int, int]] = {}
    for e in read_stream(broker, t, "out", total):
        c, s = last.get(e["key"], (0, 0))
        last[e["key"]] = max((c, s), (e["count"], e["total"]))
    assert last == expected
