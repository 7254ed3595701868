"""The service clients and their commands against real brokers: subscribe ends when idle and
reports undecodable records, publish sends nothing from an invalid file, an unreachable broker
is one line in seconds, lineage parents show as hex ids."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from doa.client import Publisher, RecordError, Subscriber
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import doa_command, drain, one_line, raw_records

pytestmark = pytest.mark.broker

BAD = [b"\x00garbage-%d" % i for i in range(3)]


def _mixed(broker: str) -> dict[tuple[int, int], bytes]:
    """5 good records and 3 undecodable ones on `events`; the bad ones' (partition, offset)."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(5):
            pub.send({"key": f"k{i}", "n": i, "payload": ""})
            if i < 3:
                pub.send_raw(BAD[i], key=b"k9")
    return {where: v for where, v in raw_records(broker, "events").items() if v in BAD}


def test_subscribe_limit_ends_when_idle_with_fewer_records(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(3):
            pub.send({"key": "a", "n": i, "payload": ""})
    # The README's example, with its default idle timeout: it must end, not wait for 10.
    got = doa_command("subscribe", "events", "--broker", broker, "-t", COUNTING,
                      "--from-beginning", "--limit", "10", timeout=60)
    assert got.returncode == 0, got.stderr.decode()
    assert [json.loads(line)["n"] for line in got.stdout.decode().splitlines()] == [0, 1, 2]
    assert "3 records; none new for 5 s" in got.stderr.decode(), got.stderr.decode()
    quick = doa_command("subscribe", "events", "--broker", broker, "--from-beginning",
                        "--limit", "10", "--idle", "1", timeout=60)
    assert quick.returncode == 0 and len(quick.stdout.decode().splitlines()) == 3
    assert "none new for 1 s" in quick.stderr.decode()


def test_a_group_subscriber_that_stops_early_leaves_the_rest_to_its_group(broker: str) -> None:
    """A group remembers only the records its subscriber handed out: the next subscriber of
    the group reads the rest, none twice and none skipped (the subscriber polls batches of up
    to 500 itself, so this is its bookkeeping, not kafka-python's iterator's)."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(40):
            pub.send({"key": "k", "n": i, "payload": ""})  # one key: one partition, in order
    first: list[int] = []
    with Subscriber(["events"], broker=broker, topology=topology, group="early",
                    from_beginning=True, idle_timeout_s=10) as sub:
        for e in sub:
            first.append(e["n"])
            if len(first) == 7:
                break
    with Subscriber(["events"], broker=broker, topology=topology, group="early",
                    from_beginning=True, idle_timeout_s=3) as sub:
        rest = [e["n"] for e in sub]
    assert first == list(range(7))
    assert rest == list(range(7, 40))


def test_subscribe_reports_each_undecodable_record_once_and_counts_them(broker: str) -> None:
    bad = _mixed(broker)
    got = doa_command("subscribe", "events", "--broker", broker, "-t", COUNTING,
                      "--from-beginning", "--idle", "2", timeout=60)
    assert got.returncode == 0, got.stderr.decode()
    assert sorted(json.loads(line)["n"] for line in got.stdout.decode().splitlines()) == \
        list(range(5))
    err = got.stderr.decode().splitlines()
    reported = [line for line in err if line.startswith("undecodable: ")]
    assert len(reported) == 3, err
    expected = sorted(f"undecodable: stream 'events' partition {p} offset {o}: cannot decode "
                      f"(bad-marker): starts with '0067'" for p, o in bad)
    assert all(line.startswith(want) for line, want in zip(sorted(reported), expected,
                                                               strict=True)), err
    assert "3 undecodable records (not printed on stdout)" in err, err
    assert "Traceback" not in got.stderr.decode() and len(err) == 5, err


def _subscribe(broker: str, on_error: Any) -> Any:
    return Subscriber(["events"], broker=broker, topology=load_topology(COUNTING),
                      from_beginning=True, idle_timeout_s=2, on_error=on_error)


def test_subscriber_on_error_raise_skip_and_yield(broker: str) -> None:
    bad = _mixed(broker)
    with _subscribe(broker, "raise") as sub, pytest.raises(RecordError) as raised:
        list(sub)
    assert (raised.value.partition, raised.value.offset) in bad
    assert raised.value.stream == "events" and raised.value.reason == "bad-marker"
    assert raised.value.value in BAD

    with _subscribe(broker, "skip") as sub:
        assert sorted(e["n"] for e in sub) == list(range(5))
    assert sub.errors == 3

    with _subscribe(broker, "yield") as sub:
        items = list(sub)
    errors = [i for i in items if isinstance(i, RecordError)]
    assert sorted(i["n"] for i in items if not isinstance(i, RecordError)) == list(range(5))
    assert {(e.partition, e.offset): e.value for e in errors} == bad
    assert all(e.stream == "events" and e.reason == "bad-marker" for e in errors)
    assert sub.errors == 3


def test_publish_with_a_bad_line_2_sends_nothing_and_names_it(broker: str,
                                                             tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"key": "a", "n": 1, "payload": ""}\n{"key": "a", "n": "two"}\n'
                     b'{"key": "a", "n": 3, "payload": ""}\n')
    done = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "line 2" in line and "'events'" in line and "Event.n" in line, line
    assert "nothing was published" in line, line
    assert raw_records(broker, "events", idle_s=1) == {}

    path.write_bytes(b"".join(orjson.dumps({"key": "a", "n": i, "payload": ""}) + b"\n"
                              for i in range(7)))
    ok = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert ok.returncode == 0, ok.stderr.decode()
    assert "published 7 records to events (acknowledged)" in ok.stderr.decode()
    assert len(raw_records(broker, "events", idle_s=1)) == 7
    path.write_bytes(orjson.dumps({"key": "a", "n": 7, "payload": ""}) + b"\n")
    one = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert "published 1 record to events (acknowledged)" in one.stderr.decode()


def test_publish_to_a_stream_no_run_has_registered_says_how_on_the_command_line(
        broker: str, tmp_path: Path) -> None:
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker)  # the stream, with no schema registered
    try:
        admin.create_topics([NewTopic("events", 1, 1)])
    finally:
        admin.close()
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"key": "a", "n": 1, "payload": ""}\n')
    done = doa_command("publish", "events", "--broker", broker, "-f", str(path))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "stream 'events' has no registered schema" in line, line
    assert "-t TOPOLOGY" in line, line  # was only "pass topology=", the Python argument


def test_subscribe_meta_shows_lineage_parents_as_hex_ids(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        sent = {pub.send({"key": f"k{i}", "n": i, "payload": ""}).hex(): i for i in range(6)}
    drain(topology, broker, 6)
    got = doa_command("subscribe", "counts", "--broker", broker, "--from-beginning", "--meta",
                      "--limit", "6", timeout=60)
    assert got.returncode == 0, got.stderr.decode()
    items = [json.loads(line) for line in got.stdout.decode().splitlines()]
    assert len(items) == 6
    for item in items:
        assert item["node"] == "count"
        assert len(item["parents"]) == 1 and sent[item["parents"][0]] == item["record"]["n"]


@pytest.mark.parametrize("args", [
    ("publish", "events", "-t", COUNTING, "-f", "/dev/null"),
    ("subscribe", "events", "-t", COUNTING),
    ("dlq", COUNTING),
    ("dlq", COUNTING, "--replay"),
    ("model", "list", "topologies/fraud.py", "scorer"),
], ids=["publish", "subscribe", "dlq", "dlq-replay", "model-list"])
def test_an_unreachable_broker_is_one_line_in_seconds(args: tuple[str, ...]) -> None:
    began = time.monotonic()
    done = doa_command(*args, "--broker", "127.0.0.1:1", timeout=60)
    took = time.monotonic() - began
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "127.0.0.1:1" in line and "unreachable" in line and "check" in line, line
    assert "unexpected" not in line and "Error:" not in line, line
    # Kafka clients retried for ~30 s here before; the probe answers at once (connection
    # refused). 15 s only bounds a failure on a busy machine; the interpreter start is most.
    assert took < 15, f"{took:.1f} s"


@pytest.mark.brokers("tansu", reason="one kind is enough: the broker is stopped, not used")
def test_ctrl_c_ends_a_subscribe_whose_broker_went_away(broker_kind: str) -> None:
    from doa.local.embedded import EmbeddedBroker

    with EmbeddedBroker() as b:
        topology = load_topology(COUNTING)
        prepare(topology, b.address)
        with Publisher("events", broker=b.address, topology=topology) as pub:
            pub.send({"key": "a", "n": 1, "payload": ""})
        proc = doa_process("subscribe", "events", "--broker", b.address, "--from-beginning",
                           "--follow")
        try:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], 60)
            assert ready, "doa subscribe printed nothing in 60 s"
            assert json.loads(proc.stdout.readline())["n"] == 1  # it is connected and reading
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
    # The broker is gone; Ctrl-C must still end the command promptly.
    os.killpg(proc.pid, signal.SIGINT)
    try:
        code = proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("doa subscribe ignored Ctrl-C for 15 s after its broker went away")
    assert code == 130, proc.stderr.read().decode() if proc.stderr else code


def test_subscribe_to_a_stream_not_created_yet_is_one_line_and_creates_nothing(
        broker: str) -> None:
    from kafka import KafkaConsumer

    began = time.monotonic()
    done = doa_command("subscribe", "events", "--broker", broker, "-t", COUNTING,
                       "--from-beginning", timeout=60)
    took = time.monotonic() - began
    assert done.returncode == 1
    line = one_line(done.stderr)
    # was "error: unexpected ValueError: No partitions are currently assigned"
    assert line == f"error: stream 'events' does not exist on {broker} yet (doa deploy or " \
                   "doa run creates a topology's streams)", line
    assert took < 20, took
    consumer = KafkaConsumer(bootstrap_servers=broker)
    try:
        assert "events" not in consumer.topics()
    finally:
        consumer.close()
