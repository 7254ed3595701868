"""A stream that gains partitions while a node reads it: the node stops, and says so.

``doa deploy``/``doa run`` refuse a stream whose topic has more partitions than declared
(:func:`doa.cluster.admin.more_partitions`). Partitions added while a node runs
(``kafka-topics --alter --partitions N``, an admin client's CreatePartitions) were assigned to
it with no state partition behind them: the rebalance callback failed inside aiokafka, which
only logs it, and the node sat idle for good (a newcomer's walk saw 100+ s of nothing, the
cause only in the log file). Now, on each engine, ``doa run`` stops within seconds, exits 1
with one line naming the node, the stream, both counts and the ways out, and loses nothing:
what it processed is snapshotted and its offsets committed, and no record of the new
partitions is taken.

Apache Kafka only: tansu (0.6) does not offer CreatePartitions (aiokafka refuses the request,
"CreatePartitionsRequest cannot be used if the API version is unknown").
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.faust import group_id
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.runtime.snapshot import latest_snapshot
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import Lines, Tail, raw_records, wait_until

pytestmark = pytest.mark.broker

LIBRARY_LINES = ("Traceback", "StaleMetadata", "UnknownTopicOrPartition", "KafkaError",
                 "Exception", "Heartbeat failed")
DECLARED, GROWN = 4, 6
STOP_S = 25.0  # from the partitions' creation to the process' exit, at most
TANSU = ("tansu (0.6) does not offer CreatePartitions: aiokafka refuses the request "
         "('CreatePartitionsRequest cannot be used if the API version is unknown')")


def _publish(address: str, n: int) -> dict[bytes, dict[str, Any]]:
    rnd = random.Random(7)
    sent: dict[bytes, dict[str, Any]] = {}
    with Publisher("events", broker=address, topology=load_topology(COUNTING)) as pub:
        for i in range(n):
            rec = {"key": f"k{rnd.randrange(17)}", "n": i, "payload": "p"}
            sent[pub.send(rec)] = rec
    return sent


async def _grow(address: str, topic: str, count: int) -> None:
    """Add partitions to ``topic`` as an operator would (CreatePartitions)."""
    from aiokafka.admin import AIOKafkaAdminClient, NewPartitions

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await admin.create_partitions({topic: NewPartitions(count)})
    finally:
        await admin.close()


def _stranger(address: str, partition: int) -> None:
    """A record of ``events`` in one of the added partitions (no publisher of doa would
    write it there: it keys into the declared ones)."""
    from kafka import KafkaProducer

    value = next(iter(raw_records(address, "events", idle_s=1).values()))
    producer = KafkaProducer(bootstrap_servers=address)
    try:
        producer.send("events", value, key=b"stranger", partition=partition).get(timeout=30)
    finally:
        producer.close()


def _committed(address: str, group: str) -> dict[int, int]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=address)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
        return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == "events"}
    finally:
        admin.close()


def _ends(address: str) -> dict[int, int]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address)
    try:
        tps = [TopicPartition("events", p) for p in range(GROWN)]
        return {tp.partition: o for tp, o in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _log_tail(path: Path) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-15:]) \
        if path.exists() else "(no log file)"


@pytest.mark.brokers("kafka", reason=TANSU)
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_node_whose_input_gains_partitions_stops_with_one_line_and_loses_nothing(
        broker: str, tmp_path: Path, engine: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    sent = _publish(broker, 2000)
    log_file = tmp_path / "doa.log"
    proc = doa_process("run", COUNTING, "--broker", broker, "--engine", engine,
                       env={"DOA_LOG_FILE": str(log_file)})
    lines = Lines(proc)
    try:
        with Tail(broker, "counts") as counts:
            def all_out() -> bool:
                counts.poll(100)
                return len(counts.records) >= len(sent)
            assert wait_until(lambda: all_out() or proc.poll() is not None, 120), lines.text()
            assert proc.poll() is None, lines.text()
        asyncio.run(_grow(broker, "events", GROWN))
        grown = time.monotonic()
        _stranger(broker, GROWN - 1)
        try:
            proc.wait(timeout=STOP_S + 60)  # bounds the failure; the claim is below
        except subprocess.TimeoutExpired:
            pytest.fail(f"`doa run --engine {engine}` still runs {STOP_S + 60:g} s after "
                        f"'events' grew from {DECLARED} to {GROWN} partitions\n{lines.text()}"
                        f"\nlog file:\n{_log_tail(log_file)}")
        took = time.monotonic() - grown
    finally:
        _stop(proc)
    text = lines.text()
    assert proc.returncode == 1, text
    errors = [line for _, line in lines.items if line.startswith("error:")]
    assert len(errors) == 1, text
    assert errors[0] == (
        f"error: node 'count': stream 'events' has {GROWN} partitions on the broker, the "
        f"topology declares {DECLARED} (partitions were added while the node ran; it "
        f"stopped): declare partitions={GROWN} for it, then `doa partitions TOPOLOGY --yes` "
        f"gives the node's state topic 'counting.count.state' {GROWN} too (a key may then "
        "move to another partition and start its state anew), or delete the topic and deploy "
        "again"), text
    assert not [x for x in LIBRARY_LINES if x in text], text
    assert took <= STOP_S, f"the node took {took:.1f} s to stop ({engine} engine)\n{text}"
    print(f"\n{engine} engine: stopped {took:.1f} s after the partitions were added")

    # No record forged: one output per input published, none for the stranger.
    with Tail(broker, "counts") as counts:
        outs = counts.drain(1500)
    parents = [lineage_of(m.headers).parents[0] for m in outs]  # type: ignore[union-attr]
    assert set(parents) == set(sent), f"{len(set(parents))} inputs with outputs of {len(sent)}"

    # Nothing lost: every partition's last snapshot covers its whole declared input, and the
    # group's offsets are there too; no state was written for the added partitions.
    ends = _ends(broker)
    assert ends[GROWN - 1] == 1, "the stranger record must be in the added partition"
    state_log = raw_records(broker, "counting.count.state")
    assert {p for p, _o in state_log} <= set(range(DECLARED)), "a state partition was forged"
    for p in range(DECLARED):
        snap = latest_snapshot([v for (q, _o), v in sorted(state_log.items()) if q == p])
        assert snap is not None, f"no snapshot of partition {p}"
        assert snap.offsets["events"] == ends[p], f"partition {p}: {snap.offsets} of {ends}"
    group = group_id(topology, topology.nodes["count"]) if engine == "faust" \
        else "counting.count"
    committed = _committed(broker, group)
    assert {p: committed.get(p) for p in range(DECLARED)} == \
        {p: ends[p] for p in range(DECLARED)}, committed
    if engine == "kafka":  # commits only what a snapshot covers: nothing of the added ones
        assert all(committed.get(p, 0) == 0 for p in range(DECLARED, GROWN)), committed
    # (Faust may commit the stranger's offset: its stream acks every record it delivered,
    # the ones doa ignores too. A restart reads from the snapshots, not from those offsets:
    # an added partition, once declared, is read from its beginning.)
