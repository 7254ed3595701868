"""`doa publish`, `doa subscribe` and `doa dlq` as real processes against a real broker."""

from __future__ import annotations

import json
import random
from pathlib import Path

import orjson
import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import partition_for
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, drain, one_line, raw_records, read_stream

pytestmark = pytest.mark.broker


def _records(n: int, seed: int = 5) -> list[dict[str, object]]:
    rnd = random.Random(seed)
    return [{"key": f"k{rnd.randrange(9)}", "n": i,
             "payload": rnd.choice(["", "x", "é ünï 💡", '"quoted"\\'])} for i in range(n)]


def _jsonl(path: Path, records: list[dict[str, object]]) -> str:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return str(path)


def test_publish_then_subscribe_round_trips_json_lines(broker: str, tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    sent = _records(300)
    published = doa_command("publish", "events", "--broker", broker, "--topology", COUNTING,
                            "--file", _jsonl(tmp_path / "in.jsonl", sent))
    assert published.returncode == 0, published.stderr.decode()
    assert "published 300 records to events" in published.stderr.decode()

    got = doa_command("subscribe", "events", "--broker", broker, "--topology", COUNTING,
                      "--from-beginning", "--limit", "300", timeout=60)
    assert got.returncode == 0, got.stderr.decode()
    lines = got.stdout.decode().splitlines()
    assert len(lines) == 300
    received = [json.loads(line) for line in lines]
    assert sorted(received, key=lambda r: r["n"]) == sent
    for key in {r["key"] for r in sent}:  # one key, one partition: its order survives
        assert [r["n"] for r in received if r["key"] == key] == \
            [r["n"] for r in sent if r["key"] == key]


def test_publish_without_topology_uses_the_registered_schema(broker: str,
                                                             tmp_path: Path) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    sent = _records(60, seed=8)
    published = doa_command("publish", "events", "--broker", broker,
                            "--file", _jsonl(tmp_path / "in.jsonl", sent))
    assert published.returncode == 0, published.stderr.decode()
    events = read_stream(broker, topology, "events", 60, idle_s=2)
    assert sorted((dict(e) for e in events), key=lambda r: r["n"]) == sent
    # The stream is declared with key="key": the registered schema must not lose that, or
    # one key's records spread over partitions and per-key state is split between them.
    misplaced = [(e["key"], e.key, e.partition) for e in events
                 if e.key != e["key"].encode()
                 or e.partition != partition_for(e["key"].encode(), 4)]
    assert not misplaced, (
        f"{len(misplaced)} of 60 records published without --topology lack their Kafka key or "
        f"sit on another partition than their key's, e.g. (key, kafka key, partition): "
        f"{misplaced[:3]}")


def test_publish_names_the_line_of_malformed_json(broker: str, tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"key": "a", "n": 1}\n{"key": "a", "n": 2}\n{"key": "a", "n": \n'
                    '{"key": "a", "n": 4}\n')
    done = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "line 3" in line and "JSON" in line, line


def test_publish_names_line_field_and_stream_of_a_record_that_fails_the_schema(
        broker: str, tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "bad.jsonl"
    path.write_text('{"key": "a", "n": 1}\n\n{"key": "a", "n": "seven"}\n')
    done = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "line 3" in line, line  # blank lines are skipped but still counted
    assert "'events'" in line and "Event.n" in line and "long" in line and "seven" in line, line


def test_subscribe_meta_shows_stream_partition_offset_and_id(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    sent = _records(40, seed=9)
    with Publisher("events", broker=broker, topology=topology) as pub:
        ids = {pub.send(r).hex(): r for r in sent}
    got = doa_command("subscribe", "events", "--broker", broker, "--from-beginning",
                      "--limit", "40", "--meta", timeout=60)
    assert got.returncode == 0, got.stderr.decode()
    items = [json.loads(line) for line in got.stdout.decode().splitlines()]
    assert len(items) == 40
    assert {i["id"] for i in items} == set(ids)
    offsets: dict[int, list[int]] = {}
    for item in items:
        record = ids[item["id"]]
        assert item["stream"] == "events"
        assert item["record"] == record
        assert item["key"] == record["key"]
        assert item["partition"] == partition_for(str(record["key"]).encode(), 4)
        assert isinstance(item["timestamp"], int) and item["timestamp"] > 0
        offsets.setdefault(item["partition"], []).append(item["offset"])
    for got_offsets in offsets.values():
        assert sorted(got_offsets) == list(range(len(got_offsets)))


def _dead_letters(broker: str) -> tuple[int, dict[bytes, str]]:
    """Publish 50 good and 4 malformed records, run the node; (records on events, bad)."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    bad = {b"\x00garbage-%d" % i: "DecodeError/bad-marker" for i in range(3)}
    bad[b"\xc3\x01" + b"\x07" * 8 + b"junk"] = "DecodeError/unknown-fingerprint"
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i, r in enumerate(_records(50, seed=2)):
            pub.send(r)
            if i % 13 == 5:
                raw = list(bad)[i // 13]
                pub.send_raw(raw, key=b"k1" if i < 30 else None)
    report = drain(topology, broker, 54, timeout=40)
    assert report.stats["count"].dead_letters == 4
    return 54, bad


def test_dlq_lists_the_dead_letters(broker: str) -> None:
    _, bad = _dead_letters(broker)
    where = sorted(f"events/{p}@{o}" for (p, o), v in raw_records(broker, "events").items()
                   if v in bad)
    listed = doa_command("dlq", COUNTING, "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    text = listed.stdout.decode()
    assert "4 dead letters" in text, text
    assert sorted(w for w in text.split() if w.startswith("events/")) == where, text
    heads = [line for line in text.splitlines() if line.startswith("events/")]
    assert len(heads) == 4 and all("  node count  DecodeError/" in h for h in heads), text
    # The output of `doa dlq` piped or captured is 80 columns wide: nothing of a letter may be
    # cut short there (a table had cut the message to nothing, the node to "flag_sp").
    for kind in sorted(set(bad.values())):
        assert kind in text, f"error type {kind!r} is cut short in the listing:\n{text}"
    lines = text.splitlines()
    whys = sorted(lines[i + 1] for i, head in enumerate(lines) if head.startswith("events/"))
    from doa import dlq

    letters = [x for x in dlq.dead_letters(broker, load_topology(COUNTING)) if isinstance(x, dict)]
    assert whys == sorted(f"    {x['message']}" for x in letters), text  # whole, one line each


def test_dlq_replay_leaves_undecodable_letters_listed_and_sends_none(broker: str) -> None:
    """Letters whose bytes no schema of the stream reads are not re-published by a replay
    (they came back as new letters on every replay); they stay listed, marked so."""
    before, _ = _dead_letters(broker)
    assert len(raw_records(broker, "events", idle_s=1)) == before
    for attempt in range(2):  # the second finds nothing new: each letter is passed once
        replay = doa_command("dlq", COUNTING, "--broker", broker, "--replay")
        assert replay.returncode == 0, replay.stderr.decode()
        said = replay.stdout.decode()
        assert said.startswith("replayed 0 dead letters; 0 failed, 0 skipped"), said
        assert ("; 4 undecodable, not replayed: fix the producer (they stay in counting.dlq, "
                "listed)" in said) == (attempt == 0), said
        assert len(raw_records(broker, "events", idle_s=1)) == before, "a letter re-sent"
    listed = doa_command("dlq", COUNTING, "--broker", broker, "--node", "count").stdout.decode()
    assert "4 dead letters of node count; 0 not replayed yet; 4 undecodable, not replayed: " \
           "fix the producer" in listed, listed
    heads = [line for line in listed.splitlines() if line.startswith("events/")]
    assert len(heads) == 4 and all(h.endswith("undecodable, not replayed") for h in heads), \
        listed
    wrong = doa_command("dlq", COUNTING, "--broker", broker, "--node", "counter")
    assert wrong.returncode != 0 and "--node 'counter'" in wrong.stderr.decode()


def test_publish_without_a_broker_says_how_to_give_one(tmp_path: Path) -> None:
    done = doa_command("publish", "events", "--topology", COUNTING,
                       "--file", _jsonl(tmp_path / "in.jsonl", _records(3)), timeout=30)
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "DOA_BROKER" in line and "--broker" in line, line
