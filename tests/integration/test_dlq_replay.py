"""`doa dlq --replay` against real brokers: bounded, tagged, and nothing counted that the
broker did not acknowledge."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.dlq import REPLAY_HEADER, unpack_replay
from doa.engines.launch import RunReport, prepare
from doa.events import lineage_of
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import COUNTING, ROOT
from tests.integration.helpers import doa_command, drain, raw_records, read_stream, wait_until

pytestmark = pytest.mark.broker

# records of events the node fails on (payload "poison"): a replay sends them (bytes that are
# not a record of events it never sends: test_dlq_undecodable.py)
BAD = [load_topology(COUNTING).codec("events").encode({"key": "k1", "n": 100 + i,
                                                       "payload": "poison"}) for i in range(3)]

FIXED = f'''
"""counting, with the bug that dead-letters `poison` payloads fixed."""
from doa import Topology

topology = Topology("counting", schemas={str(ROOT / "tests" / "schemas")!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=4)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=4)


@topology.node(reads=events, writes=counts, state=lambda: {{"keys": {{}}, "pad": b""}})
def count(state, batch):
    out = []
    for e in batch:
        c, t = state["keys"].get(e["key"], (0, 0))
        c, t = c + 1, t + e["n"]
        state["keys"][e["key"]] = (c, t)
        out.append((e, {{"key": e["key"], "n": e["n"], "count": c, "total": t}}))
    return state, out
'''


def _letters(broker: str, topology: Topology, expected: int | None) -> list[Any]:
    letters = read_stream(broker, topology, topology.dead_letters.name, expected, idle_s=2)
    return sorted(letters, key=lambda e: (e.partition, e.offset))


def _publish(broker: str, topology: Topology, good: int, bad: list[bytes]) -> None:
    """``good`` records, then ``bad`` raw bodies, all with key k1 (one partition, in order)."""
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(good):
            pub.send({"key": f"k{i % 3}", "n": i, "payload": ""})
        for raw in bad:
            pub.send_raw(raw, key=b"k1")


def _in_background(topology: Topology, broker: str, expected_in: int) -> tuple[Any, list[Any]]:
    """Run the topology's nodes in a thread until they read ``expected_in`` records."""
    result: list[RunReport | BaseException] = []

    def target() -> None:
        try:
            result.append(drain(topology, broker, expected_in, timeout=120))
        except BaseException as exc:  # reported by the test, not lost in the thread
            result.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result


def test_replay_of_letters_still_bad_ends_after_one_pass_and_tags_the_new_letters(
        broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    _publish(broker, topology, 20, BAD)
    # The node keeps running while replay runs: each replayed record fails again at once.
    thread, result = _in_background(topology, broker, 20 + 3 + 3)
    assert wait_until(lambda: len(raw_records(broker, topology.dead_letters.name,
                                              idle_s=0.5)) >= 3, 60)
    first = _letters(broker, topology, 3)
    assert [bytes(x["raw"]) for x in first] == BAD
    assert all(x["attempt"] == 0 and x["original"] is None for x in first)

    done = doa_command("dlq", COUNTING, "--broker", broker, "--replay", timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "replayed 3 dead letters: 3 to events; 0 failed, 0 skipped" in done.stdout.decode()

    thread.join(150)
    assert not thread.is_alive(), "the node never read the 3 replayed records"
    assert isinstance(result[0], RunReport), result
    assert result[0].stats["count"].dead_letters == 6
    # Every event is accounted for: 20 counted, 3 originals and 3 replays dead-lettered.
    assert len(raw_records(broker, "events", idle_s=1)) == 26
    assert len(raw_records(broker, "counts", idle_s=1)) == 20
    letters = _letters(broker, topology, None)
    assert len(letters) == 6, "the dead-letter stream grew by more than the replayed letters"
    again = letters[3:]
    assert [bytes(x["raw"]) for x in again] == BAD
    assert [x["attempt"] for x in again] == [1, 1, 1]
    assert [x["original"] for x in again] == [
        {"stream": "events", "partition": x["partition"], "offset": x["offset"]} for x in first]
    assert all(x["stream"] == "events" and x["offset"] >= 23 for x in again)
    # The replayed records carry the replay header, and a lineage parent: their letter.
    replayed = [m for m in _raw_messages(broker, "events") if m.offset >= 23]
    assert len(replayed) == 3
    letter_ids = {x.id for x in first}
    for m in replayed:
        header = dict(m.headers)[REPLAY_HEADER]
        assert unpack_replay(header).attempt == 1
        parents = lineage_of(m.headers).parents  # type: ignore[union-attr]
        assert len(parents) == 1 and parents[0] in letter_ids


def test_replay_after_a_fix_reaches_the_node(broker: str, tmp_path: Path) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(10):
            pub.send({"key": f"k{i % 2}", "n": i, "payload": "poison" if i in (3, 7) else ""})
    assert drain(topology, broker, 10).stats["count"].dead_letters == 2
    fixed_path = tmp_path / "counting_fixed.py"
    fixed_path.write_text(FIXED)

    done = doa_command("dlq", str(fixed_path), "--broker", broker, "--replay", timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "replayed 2 dead letters: 2 to events; 0 failed, 0 skipped" in done.stdout.decode()
    fixed = load_topology(str(fixed_path))
    report = drain(fixed, broker, 2)
    assert report.stats["count"].dead_letters == 0
    counted = read_stream(broker, fixed, "counts", 10, idle_s=2)
    assert sorted(e["n"] for e in counted) == list(range(10))
    # k1's state came back from the snapshot: the replayed 3 and 7 count on after 1, 5, 9.
    assert {e["n"]: e["count"] for e in counted if e["key"] == "k1"} == {1: 1, 5: 2, 9: 3,
                                                                       3: 4, 7: 5}
    again = doa_command("dlq", str(fixed_path), "--broker", broker, "--replay", timeout=120)
    assert "replayed 0 dead letters; 0 failed, 0 skipped" in again.stdout.decode(), (
        again.stdout.decode() + again.stderr.decode())


@pytest.mark.brokers("kafka", reason="tansu accepts records of any size (32 MB tried); only "
                                     "Apache Kafka refuses one over a topic's max.message.bytes")
def test_a_letter_the_broker_refuses_stays_and_is_reported_again(broker: str) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    topology = load_topology(COUNTING)
    prepare(topology, broker)
    # a record of events the node failed on (a bug, since fixed), too big once events is limited
    big = topology.codec("events").encode({"key": "k1", "n": 99, "payload": "x" * 20_000})
    _publish(broker, topology, 5, BAD[:2])
    assert drain(topology, broker, 7).stats["count"].dead_letters == 2
    _letter(broker, topology, big, 999)
    letters = _letters(broker, topology, 3)
    assert [len(x["raw"]) for x in letters] == [len(BAD[0]), len(BAD[1]), len(big)]
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, "events",
                                            configs={"max.message.bytes": "10000"})])
    finally:
        admin.close()
    where = f"counting.dlq/{letters[2].partition}@{letters[2].offset}"
    original = f"events/{letters[2]['partition']}@{letters[2]['offset']}"

    for run, replayed in ((1, 2), (2, 0)):
        done = doa_command("dlq", COUNTING, "--broker", broker, "--replay", timeout=120)
        text = done.stdout.decode() + done.stderr.decode()
        assert done.returncode == 1, text
        assert (f"replayed {replayed} dead letters" + (": 2 to events" if replayed else "")
                + "; 1 failed, 0 skipped") in done.stdout.decode(), (run, text)
        failures = [line for line in done.stderr.decode().splitlines()
                    if line.startswith("not replayed")]
        assert len(failures) == 1, (run, text)
        assert where in failures[0] and original in failures[0], (run, failures)
        assert "Traceback" not in text
    # The two small letters were re-published once; the big one never.
    values = list(raw_records(broker, "events", idle_s=1).values())
    assert values.count(BAD[0]) == 2 and values.count(BAD[1]) == 2 and values.count(big) == 0


def _letter(broker: str, topology: Topology, raw: bytes, offset: int) -> None:
    """A letter of node count for the record ``raw`` at events/1@``offset``, written as is."""
    from kafka import KafkaProducer

    value = topology.codec(topology.dead_letters.name).encode({
        "stream": "events", "partition": 1, "offset": offset, "node": "count",
        "error_type": "ValueError", "message": "a bug, since fixed", "key": b"k1", "raw": raw,
        "timestamp": 0, "record_timestamp": 0, "attempt": 0, "original": None})
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    try:
        producer.send(topology.dead_letters.name, value, key=b"count").get(30)
    finally:
        producer.close()


def _raw_messages(address: str, stream: str) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, consumer_timeout_ms=1000,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(stream, p) for p in consumer.partitions_for_topic(stream) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return list(consumer)
    finally:
        consumer.close()
