"""A dead-lettered record on real brokers: `doa dlq --replay` re-publishes it as it was read
(its event time) with a lineage header that names its letter, and `doa lineage` follows it
both ways: record -> dead letter -> replay -> what came of that, and replay -> dead letter ->
record. A tombstone's letter (the letter says it is one, or for a letter written before it
did, its message) is never re-published: no doa node takes a null value, so each replay made
one more letter of it. It stays listed as a tombstone, not as waiting for a replay."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.registry import read_registry
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.keys import partition_for
from doa.runtime.runner import RawRecord
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from doa.wire.schema import builtin_schema_dir
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, drain
from tests.integration.test_dlq_replay import FIXED
from tests.test_dlq import NO_NULLS, NULL_WHY, OLD_DEAD_LETTER, letters_before

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000  # event times far from the wall clock: a replay stamped now shows
POISON = 3  # the record the counting node dead-letters (payload "poison")


K1 = "key 'k1'"  # as a listed letter's line shows the key of the records of this test


def _fail(broker: str, extra: list[tuple[bytes | None, int]] = ()) -> tuple[Topology, int]:
    """Records n = 0..5 of key k1 (one partition, event times T0 + 10 n; n = 3 poison), then
    ``extra`` raw values (with their event times) of key k1; the node runs over them. Returns
    the topology and the partition of k1."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for n in range(6):
            pub.send({"key": "k1", "n": n, "payload": "poison" if n == POISON else ""},
                     timestamp_ms=T0 + 10 * n)
    partition = partition_for(b"k1", topology.streams["events"].partitions)
    _produce(broker, [("events", partition, b"k1", value, ts) for value, ts in extra])
    assert drain(topology, broker, 6 + len(extra)).stats["count"].dead_letters == 1 + len(extra)
    return topology, partition


def _produce(broker: str,
             records: Iterable[tuple[str, int, bytes | None, bytes | None, int]]) -> None:
    """Write raw (stream, partition, key, value, timestamp) records, each acknowledged."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    try:
        for stream, partition, key, value, ts in records:
            producer.send(stream, value=value, key=key, partition=partition,
                          timestamp_ms=ts).get(timeout=30)
    finally:
        producer.close()


def _messages(address: str, stream: str, partition: int) -> list[Any]:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, consumer_timeout_ms=1500,
                             enable_auto_commit=False)
    try:
        tp = TopicPartition(stream, partition)
        consumer.assign([tp])
        consumer.seek_to_beginning(tp)
        return list(consumer)
    finally:
        consumer.close()


def _replay(topology_path: str, broker: str, summary: str) -> str:
    """Run ``doa dlq --replay``: its summary line must be ``summary``; what it said on stderr."""
    done = doa_command("dlq", topology_path, "--broker", broker, "--replay", timeout=120)
    text = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, text
    assert done.stdout.decode().splitlines()[-1:] == [summary], text
    return done.stderr.decode()


def _listing(broker: str, *args: str) -> str:
    done = doa_command("dlq", COUNTING, "--broker", broker, *args, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode()


def _heads(listed: str) -> list[str]:
    """The first line of each letter a listing shows, sorted."""
    return sorted(line for line in listed.splitlines() if line.startswith("events/"))


def _lineage(broker: str, event: str, topology_path: str) -> list[str]:
    done = doa_command("lineage", event, topology_path, "--broker", broker, timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    return done.stdout.decode().splitlines()[:-1]  # the last line: fetches and time


def _at(line: str) -> str:
    """The coordinates a tree line shows (``├─ child: counts:1:4  t=...``)."""
    found = re.search(r"[├└]─ [a-z ]+: (\S+)  t=(\d+)", line)
    assert found, line
    return found.group(1)


def test_replay_keeps_event_time_and_leaves_a_tombstone_listed(broker: str,
                                                              tmp_path: Path) -> None:
    tombstone, empty = (None, T0 + 100), (b"", T0 + 110)
    topology, p = _fail(broker, [tombstone, empty])
    before = _messages(broker, "events", p)
    assert [(m.value, m.timestamp) for m in before[6:]] == [tombstone, empty]
    dlq = topology.dead_letters
    codec = topology.codec(dlq.name)
    at = partition_for(b"count", dlq.partitions)
    # the letter says whether its record had no value: its raw is b"" either way
    assert sorted((x["offset"], x["raw"], x["tombstone"]) for x in map(
        codec.decode, (m.value for m in _messages(broker, dlq.name, at)))) == [
        (POISON, before[POISON].value, False), (6, b"", True), (7, b"", False)]
    where = f"{dlq.name}/{at}@"
    [null_at] = [m.offset for m in _messages(broker, dlq.name, at)
                 if codec.decode(m.value)["tombstone"]]
    # no doa node takes a null value: the tombstone is listed as one, not as waiting for a replay
    listed = _listing(broker)
    assert _heads(listed) == sorted([
        f"events/{p}@{POISON}  node count  ValueError  ({len(before[POISON].value)} bytes, {K1})",
        f"events/{p}@6  node count  DoaError  (0 bytes, {K1})  tombstone, not replayed",
        f"events/{p}@7  node count  DecodeError/truncated  (0 bytes, {K1})  undecodable, not "
        "replayed"])
    assert f"    not replayed: {NULL_WHY}" in listed, listed
    assert ("3 dead letters; 1 not replayed yet (`doa dlq --replay` sends them); 1 undecodable, "
            f"not replayed: fix the producer; 1 tombstone, not replayed: {NO_NULLS}\n") in listed

    # neither the empty value (no record of events) nor the tombstone is replayed: each would
    # only fail again; the poison record is, to the node fixed since
    fixed = tmp_path / "counting_fixed.py"
    fixed.write_text(FIXED)
    said = _replay(str(fixed), broker, "replayed 1 dead letters: 1 to events; 0 failed, 0 "
                   "skipped; 1 undecodable, not replayed: fix the producer; 1 tombstone, not "
                   f"replayed: {NO_NULLS} (they stay in {dlq.name}, listed)")
    assert f"tombstone, not replayed: {where}{null_at}: node 'count': {NULL_WHY}" in \
        said.splitlines(), said
    replayed = _messages(broker, "events", p)[8:]
    # as it was read: value and event time
    assert [(m.value, m.timestamp) for m in replayed] == [
        (before[POISON].value, T0 + 10 * POISON)]
    assert drain(load_topology(str(fixed)), broker, 1).stats["count"].dead_letters == 0

    # a second replay sends nothing: the tombstone is not re-sent, and no new letter came of it
    said = _replay(str(fixed), broker, "replayed 0 dead letters; 0 failed, 0 skipped")
    assert "tombstone" not in said, said
    assert len(_messages(broker, "events", p)) == 9
    assert len(_messages(broker, dlq.name, at)) == 3
    listed = _listing(broker)
    assert ("3 dead letters; 0 not replayed yet; 1 undecodable, not replayed: fix the producer; "
            f"1 tombstone, not replayed: {NO_NULLS}\n") in listed, listed
    size = len(before[POISON].value)
    assert f"events/{p}@{POISON}  node count  ValueError  ({size} bytes, {K1})  replayed" \
        in _heads(listed), listed
    # --open lists the letters a replay leaves: the tombstone, the empty value
    opened = _listing(broker, "--open")
    assert [h.split("  ")[-1] for h in _heads(opened)] == [
        "tombstone, not replayed", "undecodable, not replayed"], opened


def test_letters_written_before_the_tombstone_field_are_told_by_their_message(
        broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a deployment of the version before: its dead-letter schema had no field tombstone
    shipped = tmp_path / "schemas"
    shutil.copytree(builtin_schema_dir(), shipped)
    (shipped / "dead_letter.avsc").write_text(json.dumps(OLD_DEAD_LETTER.json))
    with monkeypatch.context() as before:
        before.setattr("doa.wire.schema.builtin_schema_dir", lambda: shipped)
        assert "counting.dlq" in prepare(load_topology(COUNTING), broker)
    topology = load_topology(COUNTING)
    p = partition_for(b"k1", topology.streams["events"].partitions)
    originals = [RawRecord("events", p, offset, T0 + 100 + offset, b"k1", value, ())
                 for offset, value in enumerate([None, b""])]
    _produce(broker, [(r.stream, r.partition, r.key, r.value, r.timestamp) for r in originals] +
             [(o.stream, o.partition, o.key, o.value, o.timestamp)
              for o in letters_before(topology, originals)])

    # the new version goes in beside the old (an optional field), and old letters still read
    assert prepare(topology, broker) == ["counting.dlq"]
    assert [r.version for r in read_registry(broker)["counting.dlq"]] == [1, 2]
    # the null value is a tombstone by the runtime's message, the empty one no record: not sent
    listed = _listing(broker)
    assert _heads(listed) == [
        f"events/{p}@0  node count  DoaError  (0 bytes, {K1})  tombstone, not replayed",
        f"events/{p}@1  node count  DecodeError/truncated  (0 bytes, {K1})  undecodable, not "
        "replayed"]
    _replay(COUNTING, broker, "replayed 0 dead letters; 0 failed, 0 skipped; 1 undecodable, not "
            f"replayed: fix the producer; 1 tombstone, not replayed: {NO_NULLS} (they stay in "
            "counting.dlq, listed)")
    written = [(m.value, m.timestamp) for m in _messages(broker, "events", p)]
    assert written == [(None, T0 + 100), (b"", T0 + 101)], written


def test_lineage_follows_a_dead_lettered_record_to_its_replay_and_back(
        broker: str, tmp_path: Path) -> None:
    topology, p = _fail(broker)
    original = f"events:{p}:{POISON}"
    dlq = topology.dead_letters
    [letter] = _messages(broker, dlq.name, partition_for(b"count", dlq.partitions))
    at_letter = f"{dlq.name}:{letter.partition}:{letter.offset}"

    # Dead-lettered, not replayed yet: the record is not lost, it says where it went.
    lines = _lineage(broker, original, COUNTING)
    assert lines[1] == "├─ ancestry: none (a source record: no parents)", lines
    assert lines[2] == "└─ descendants", lines
    assert _at(lines[3]) == at_letter and " dead letter: " in lines[3], lines
    assert "node=count" in lines[3] and lines[3].endswith(
        f"(ValueError: poison event n={POISON})"), lines
    assert lines[4].endswith("replay: not found (none yet: doa dlq --replay re-publishes it)")

    fixed = tmp_path / "counting_fixed.py"
    fixed.write_text(FIXED)
    _replay(str(fixed), broker, "replayed 1 dead letters: 1 to events; 0 failed, 0 skipped")
    [replayed] = _messages(broker, "events", p)[6:]
    assert replayed.timestamp == T0 + 10 * POISON
    lin = lineage_of(replayed.headers)
    assert lin is not None and [str(c) for c in lin.coordinates] == [at_letter]
    assert drain(load_topology(str(fixed)), broker, 1).stats["count"].dead_letters == 0
    counted = [m for m in _messages(broker, "counts", p)
               if replayed.offset in [c.offset for c in lineage_of(m.headers).coordinates]]
    assert len(counted) == 1

    # replayed record -> dead letter -> original record (the walker: "version-1 header")
    lines = _lineage(broker, f"events:{p}:{replayed.offset}", str(fixed))
    assert "node=doa-dlq-replay" in lines[0], lines
    assert [_at(x) for x in lines[2:4]] == [at_letter, original], lines
    assert "parent: " in lines[2] and "parent: " in lines[3], lines
    assert _at(lines[5]) == f"counts:{p}:{counted[0].offset}", lines

    # original -> dead letter -> replay -> the count the fixed node made of it
    lines = _lineage(broker, original, str(fixed))
    assert [_at(x) for x in lines[3:6]] == [at_letter,
                                            f"events:{p}:{replayed.offset}",
                                            f"counts:{p}:{counted[0].offset}"], lines
    assert [x.split("─ ")[1].split(":")[0] for x in lines[3:6]] == [
        "dead letter", "replay", "child"], lines


def test_replay_of_a_topology_never_deployed_is_the_listing_one_line(broker: str) -> None:
    for args in (("--replay",), ()):
        done = doa_command("dlq", COUNTING, "--broker", broker, *args, timeout=60)
        assert done.returncode == 1, (args, done.stdout.decode(), done.stderr.decode())
        assert done.stdout.decode() == "", args
        assert done.stderr.decode().splitlines() == [
            f"error: stream 'counting.dlq' does not exist on {broker} yet (doa deploy or doa "
            "run creates a topology's streams)"], args
