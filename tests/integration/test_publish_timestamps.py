"""``doa publish --timestamp-field FIELD`` stamps each record with its line's event time (a
source stamps what the caller gives, or the wall clock); a line without an integer there is
refused by its number before anything is sent."""

from __future__ import annotations

import time
from pathlib import Path

import orjson
import pytest

from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, doa_env, raw_records

pytestmark = pytest.mark.broker

STAMPS = [1_600_000_000_000 + i for i in (0, 7, 3)]


def _timestamps(address: str, stream: str) -> list[int]:
    """Every record's Kafka timestamp of ``stream``, in partition and offset order."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, consumer_timeout_ms=2000,
                             enable_auto_commit=False)
    try:
        tps = [TopicPartition(stream, p) for p in consumer.partitions_for_topic(stream) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        return [m.timestamp for m in sorted(consumer, key=lambda m: (m.partition, m.offset))]
    finally:
        consumer.close()


def _publish(broker: str, path: Path, *options: str) -> tuple[int, str]:
    done = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path),
                       *options, env=doa_env())
    return done.returncode, done.stderr.decode().strip()


def test_publish_stamps_each_record_with_its_timestamp_field(broker: str,
                                                             tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"key": "a", "n": ts, "payload": ""}) + b"\n"
                              for ts in STAMPS))
    code, stderr = _publish(broker, path, "--timestamp-field", "n")
    assert code == 0, stderr
    assert _timestamps(broker, "events") == STAMPS  # one key: one partition, in order

    before = int(time.time() * 1000)
    code, stderr = _publish(broker, path)  # without it: the wall clock
    assert code == 0, stderr
    assert all(ts >= before for ts in _timestamps(broker, "events")[3:])


@pytest.mark.brokers("tansu", reason="the same client on both; CI time")
def test_a_timestamp_field_the_schema_lacks_only_carries_the_time(broker: str,
                                                                  tmp_path: Path) -> None:
    """A line may carry its event time in a field of its own (the walk's labels had a ``ts``
    their schema lacks: every line was refused, "field Label.ts is not in the schema")."""
    t = load_topology(COUNTING)
    prepare(t, broker)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"key": "a", "n": i, "payload": "", "at": ts})
                              + b"\n" for i, ts in enumerate(STAMPS)))
    code, stderr = _publish(broker, path, "--timestamp-field", "at")
    assert code == 0, stderr
    assert _timestamps(broker, "events") == STAMPS
    codec = t.codec("events")
    values = [codec.decode(v) for _, v in sorted(raw_records(broker, "events").items())]
    assert values == [{"key": "a", "n": i, "payload": ""} for i in range(3)]


@pytest.mark.brokers("tansu", reason="checked before anything is sent; CI time")
def test_publish_refuses_a_line_without_an_integer_timestamp_field(broker: str,
                                                                    tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "in.jsonl"
    path.write_text('{"key": "a", "n": 1, "payload": "x"}\n\n{"key": "a", "n": 2}\n')
    code, stderr = _publish(broker, path, "--timestamp-field", "n")
    assert code == 0, stderr
    code, stderr = _publish(broker, path, "--timestamp-field", "payload")
    assert code == 1
    assert stderr == (  # every bad line named, nothing sent
        "error: 2 bad lines; nothing was published:\n"
        "  line 1: --timestamp-field payload: expected ms since the epoch (an integer >= 0), "
        "got str 'x'\n"
        "  line 3: --timestamp-field payload: expected ms since the epoch (an integer >= 0), "
        "the line has no field 'payload'")
    path.write_text('{"key": "a", "n": 1}\n')
    code, stderr = _publish(broker, path, "--timestamp-field", "payload")
    assert code == 1
    assert stderr == ("error: line 1: --timestamp-field payload: expected ms since the epoch "
                      "(an integer >= 0), the line has no field 'payload'; nothing was "
                      "published")
    path.write_text('{"key": "a", "n": 1}\n\n{"key": "a", "n": -5}\n{"key": "a", "n": 3}\n')
    code, stderr = _publish(broker, path, "--timestamp-field", "n")
    assert code == 1
    assert stderr == ("error: line 3: --timestamp-field n: expected ms since the epoch (an "
                      "integer >= 0), got int -5; nothing was published")
    assert len(raw_records(broker, "events", idle_s=1)) == 2
