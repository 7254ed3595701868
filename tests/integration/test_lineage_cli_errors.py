"""`doa lineage` given a wrong stream, partition, offset or id: one line at once, no topic made.

A misspelt stream once auto-created that topic (the fetch's metadata request) and a missing
partition waited 30 s for offsets; both are checked against metadata first now. An id needs
``--stream`` or a topology, and may be shortened to the 8 digits ``doa lineage`` prints.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command

pytestmark = pytest.mark.brokers(
    "tansu", reason="the embedded broker is the one that would create a topic a metadata request "
    "names (Apache Kafka here has auto-creation off); the checks are the CLI's; CI time")

ERROR = re.compile(r"error: [^\n]+\n")  # one line, no traceback


def _seed(broker: str) -> list[bytes]:
    """The counting topology's topics (``events`` has 4 partitions), three records in
    partition 0 of ``events``; their ids."""
    t = load_topology(COUNTING)
    prepare(t, broker)
    with Publisher("events", broker=broker, topology=t) as pub:
        return [pub.send({"key": "k", "n": n, "payload": ""}, partition=0) for n in range(3)]


def _topics(broker: str) -> set[str]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=broker, allow_auto_create_topics=False)
    try:
        return set(consumer.topics())
    finally:
        consumer.close()


def _lineage(broker: str, *args: str) -> Any:
    return doa_command("lineage", *args, "--broker", broker, timeout=120)


def _fails(broker: str, *args: str) -> str:
    """The one-line error of ``doa lineage ARGS``, checked to come at once and create nothing."""
    before = _topics(broker)
    began = time.monotonic()
    done = _lineage(broker, *args)
    seconds = time.monotonic() - began
    err: str = done.stderr.decode()
    assert (done.returncode, done.stdout, ERROR.fullmatch(err) is not None) == (1, b"", True), err
    assert seconds < 12, f"{seconds:.1f} s: {err}"  # was ~33 s (a metadata timeout)
    assert _topics(broker) == before
    return err.removeprefix("error: ").rstrip("\n")


def test_a_wrong_stream_is_named_and_not_created(broker: str) -> None:
    ids = _seed(broker)
    near = f"no stream 'event' on {broker} (streams: events, counting.dlq, counts)"
    assert _fails(broker, "event:0:1") == near
    assert _fails(broker, "event:0:1", COUNTING) == near
    assert _fails(broker, ids[0].hex(), "--stream", "event") == near  # the id path
    assert _fails(broker, "nosuch:0:0", "--no-descendants") == (
        f"no stream 'nosuch' on {broker} (streams: counting.dlq, counts, events)")
    assert not {"event", "nosuch"} & _topics(broker)


def test_a_missing_partition_is_named_at_once_and_an_offset_past_the_end_too(
        broker: str) -> None:
    _seed(broker)
    assert _fails(broker, "events:4:5", "--no-descendants") == (
        "stream 'events' has no partition 4 (it has 4 partitions: 0-3)")
    assert _fails(broker, "events:0:7", "--no-descendants") == (
        "stream 'events' partition 0: no record at offset 7 (end 3)")


def test_an_id_needs_a_stream_or_a_topology_as_the_help_says(broker: str) -> None:
    ids = _seed(broker)
    assert _fails(broker, ids[1].hex(), "--no-descendants") == (
        f"event {ids[1].hex()}: an id names no stream; give --stream STREAM or a TOPOLOGY, or "
        f"STREAM:PARTITION:OFFSET (on {broker}: streams: counting.dlq, counts, events)")
    help_text = " ".join(doa_command("lineage", "--help").stdout.decode().split())
    assert "(default: all the TOPOLOGY's streams; without a TOPOLOGY, required)" in help_text
    for args in (("--stream", "events"), (COUNTING,)):
        found = _lineage(broker, ids[1].hex(), *args, "--json", "--no-descendants")
        assert found.returncode == 0, found.stderr.decode()
        assert b'"offset": 1' in found.stdout


def test_an_id_may_be_its_first_8_digits_as_printed(broker: str) -> None:
    ids = _seed(broker)
    short = ids[2].hex()[:8]
    shown = _lineage(broker, "events:0:2", "--no-descendants")
    assert f"id={short}…" in shown.stdout.decode()  # what a user copies
    for given in (short, f"{short}…", ids[2].hex()[:12].upper()):
        found = _lineage(broker, given, "--stream", "events", "--json", "--no-descendants")
        assert found.returncode == 0, found.stderr.decode()
        assert f'"id": "{ids[2].hex()}"'.encode() in found.stdout
    assert _fails(broker, short[:7], "--stream", "events") == (
        f"event {short[:7]!r}: an event id is 32 hex digits, or its first 8 or more (got 7)")
    missing = "0" * 8 if not ids[0].hex().startswith("0" * 8) else "f" * 8
    assert _fails(broker, missing, "--stream", "events", "--stream", "counts") == (
        f"event {missing}: not found in events, counts")
