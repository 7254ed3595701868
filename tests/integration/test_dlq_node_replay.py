"""``doa dlq --replay --node NAME`` replays that node's letters only, and runs of one node and
of all mix with each letter replayed exactly once (none twice, none skipped); bookkeeping
written before (the group of all, one offset per partition) still counts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from doa.dlq import REPLAY_HEADER, replay, unpack_replay
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import ROOT
from tests.integration.helpers import doa_command

pytestmark = pytest.mark.broker

TWO = f'''
"""Two nodes reading events, each failing on its own poison."""
from doa import Topology

topology = Topology("pair", schemas={str(ROOT / "tests" / "schemas")!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=2)
out_a = topology.stream("out_a", schema="testing.Count", key="key", partitions=2)
out_b = topology.stream("out_b", schema="testing.Count", key="key", partitions=2)


def _node(name):
    def step(state, batch):
        out = []
        for e in batch:
            if e["payload"] == "poison-" + name:
                raise ValueError("poison for " + name)
            out.append((e, {{"key": e["key"], "n": e["n"], "count": 0, "total": 0}}))
        return state, out
    return step


topology.node(name="a", reads=events, writes=out_a, state=dict)(_node("a"))
topology.node(name="b", reads=events, writes=out_b, state=dict)(_node("b"))
'''


def _topology(tmp_path: Path) -> Topology:
    path = tmp_path / "pair.py"
    path.write_text(TWO)
    return load_topology(str(path))


def _letters(broker: str, topology: Topology, nodes: str, first: int) -> None:
    """One letter per character of ``nodes`` ('a' or 'b'), of original events/1@first...
    (each a valid record of events: a bug in the node, since fixed)."""
    from kafka import KafkaProducer

    codec = topology.codec(topology.dead_letters.name)
    raw = topology.codec("events").encode({"key": "k1", "n": 0, "payload": "p"})
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    try:
        for i, node in enumerate(nodes):
            value = codec.encode({
                "stream": "events", "partition": 1, "offset": first + i, "node": node,
                "error_type": "ValueError", "message": f"poison for {node}", "key": b"k1",
                "raw": raw, "timestamp": 0, "record_timestamp": 0, "attempt": 0,
                "original": None})
            producer.send(topology.dead_letters.name, value, key=node.encode(), partition=0)
        producer.flush(30)
    finally:
        producer.close()


def _replayed(broker: str) -> list[tuple[int, str]]:
    """Each replay on events: (the original offset, the node it is for)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker, consumer_timeout_ms=1500,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition("events", p) for p in sorted(consumer.partitions_for_topic(
            "events") or [])]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found = []
        for m in consumer:
            header = dict(m.headers or []).get(REPLAY_HEADER)
            if header is not None:
                r = unpack_replay(header)
                found.append((r.offset, r.node))
        return sorted(found)
    finally:
        consumer.close()


def _run(broker: str, topology: Topology, node: str | None) -> Any:
    report = replay(broker, topology, node=node, timeout_s=60)
    assert report.failed == [] and report.skipped == [] and report.undecodable == []
    return report


def test_mixed_runs_replay_each_letter_once(broker: str, tmp_path: Path) -> None:
    t = _topology(tmp_path)
    prepare(t, broker)
    _letters(broker, t, "abab", 0)  # letters 0..3
    assert _run(broker, t, "a").total == 2
    assert _replayed(broker) == [(0, "a"), (2, "a")]
    _letters(broker, t, "ab", 4)  # 4, 5
    report = _run(broker, t, None)
    assert (report.total, report.before) == (4, 2)  # 1, 3, 4, 5; 0 and 2 were replayed
    _letters(broker, t, "ab", 6)  # 6, 7
    assert _run(broker, t, "b").total == 1  # 7
    assert _run(broker, t, None).total == 1  # 6
    for node in ("a", "b", None):
        assert _run(broker, t, node).total == 0
    replayed = _replayed(broker)
    assert Counter(o for o, _ in replayed) == Counter(range(8)), replayed
    assert all(node == "ab"[o % 2] for o, node in replayed), replayed
    # the listing says every letter was replayed, of each node
    for node in ("a", "b"):
        listed = doa_command("dlq", str(tmp_path / "pair.py"), "--broker", broker, "--node",
                             node)
        text = listed.stdout.decode()
        assert listed.returncode == 0, listed.stderr.decode()
        assert f"4 dead letters of node {node}; 0 not replayed yet" in text, text


def test_the_command_replays_one_nodes_letters(broker: str, tmp_path: Path) -> None:
    t = _topology(tmp_path)
    prepare(t, broker)
    _letters(broker, t, "abba", 0)
    path = str(tmp_path / "pair.py")
    done = doa_command("dlq", path, "--broker", broker, "--replay", "--node", "b")
    assert done.returncode == 0, done.stderr.decode()
    assert "replayed 2 dead letters of node b: 2 to events" in done.stdout.decode(), (
        done.stdout.decode())
    assert _replayed(broker) == [(1, "b"), (2, "b")]
    listed = doa_command("dlq", path, "--broker", broker, "--open").stdout.decode()
    assert "2 dead letters; 2 not replayed yet" in listed, listed
    assert sorted(w for w in listed.split() if w.startswith("events/")) == [
        "events/1@0", "events/1@3"], listed
    wrong = doa_command("dlq", path, "--broker", broker, "--replay", "--node", "c")
    assert wrong.returncode == 1 and "--node 'c'" in wrong.stderr.decode()


def test_bookkeeping_written_before_still_counts(broker: str, tmp_path: Path) -> None:
    """doa before --node committed one offset per partition in TOPOLOGY.dlq-replay."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    t = _topology(tmp_path)
    prepare(t, broker)
    _letters(broker, t, "abab", 0)
    old = KafkaConsumer(bootstrap_servers=broker, group_id="pair.dlq-replay",
                        enable_auto_commit=False)
    try:  # what an earlier version left after replaying letters 0 and 1
        old.commit({TopicPartition(t.dead_letters.name, 0): OffsetAndMetadata(2, "", -1)})
    finally:
        old.close(autocommit=False)
    assert _run(broker, t, "a").total == 1  # 2
    assert _run(broker, t, None).total == 1  # 3
    assert _replayed(broker) == [(2, "a"), (3, "b")]
