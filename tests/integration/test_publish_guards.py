"""A Publisher sends only what a reader can decode and the broker takes, or nothing: a topology
whose schema is not registered for the stream is refused at open (its records would be
undecodable by every reader), and a record larger than the broker takes is refused by ``send``
(and, in ``doa publish``, by the validation pass, before anything is sent)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from doa.client import Publisher
from doa.cluster.registry import read_registry
from doa.engines.launch import prepare
from doa.errors import CompatibilityError, DoaError
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, doa_env, one_line, raw_records

pytestmark = pytest.mark.broker

TOPOLOGY = '''
from doa import Topology

topology = Topology("guarded", schemas="schemas")
things = topology.stream("things", schema="guard.Thing", key="id"{config})
'''
THING = [{"name": "id", "type": "string"}, {"name": "note", "type": "string"}]
COLOR_NO_DEFAULT = {"name": "color", "type": "string"}
BIG = 2 * 1024 * 1024  # a 2 MiB string: above kafka-python's max_request_size (1 MiB)


def _topology(root: Path, name: str, fields: list[dict[str, str]], config: str = "") -> str:
    """Write a one-stream topology under ``root/name``; return its file."""
    d = root / name
    (d / "schemas").mkdir(parents=True)
    (d / "schemas" / "thing.avsc").write_text(json.dumps(
        {"type": "record", "name": "Thing", "namespace": "guard", "fields": fields}))
    (d / "topology.py").write_text(TOPOLOGY.replace(
        "{config}", f", config={config}" if config else ""))
    return str(d / "topology.py")


@pytest.mark.brokers("tansu", reason="the registry is read by doa's own client; CI time")
def test_a_topology_whose_schema_deploy_refused_cannot_publish(broker: str,
                                                              tmp_path: Path) -> None:
    prepare(load_topology(_topology(tmp_path, "v1", THING)), broker)
    v2_file = _topology(tmp_path, "v2", [*THING, COLOR_NO_DEFAULT])
    v2 = load_topology(v2_file)
    with pytest.raises(CompatibilityError):
        prepare(v2, broker)  # doa deploy refuses it: a new field without a default
    fingerprint = v2.codec("things").schema.fingerprint.hex()
    v1_fingerprint = read_registry(broker)["things"][0].schema.fingerprint.hex()

    with pytest.raises(DoaError) as caught:
        Publisher("things", broker=broker, topology=v2)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"stream 'things': schema guard.Thing (fingerprint {fingerprint})"
                              " of topology 'guarded' is not registered"), message
    assert f"(registered: v1 {v1_fingerprint})" in message, message
    assert "doa deploy TOPOLOGY" in message, message

    path = tmp_path / "in.jsonl"
    path.write_text('{"id": "a", "note": "", "color": "red"}\n')
    done = doa_command("publish", "things", "--broker", broker, "-t", v2_file, "-f", str(path),
                       env=doa_env())
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "not registered" in line and fingerprint in line and "doa deploy" in line, line
    assert raw_records(broker, "things", idle_s=1) == {}, "nothing undecodable was written"


@pytest.mark.brokers("tansu", reason="the producer's own limit, the same on every broker; "
                                     "CI time")
def test_send_of_a_record_above_the_limit_is_a_doa_error_naming_stream_size_and_limit(
        broker: str) -> None:
    prepare(load_topology(COUNTING), broker)
    with Publisher("events", broker=broker, topology=load_topology(COUNTING)) as pub:
        pub.send({"key": "a", "n": 0, "payload": ""})
        with pytest.raises(DoaError) as caught:
            pub.send({"key": "a", "n": 1, "payload": "x" * BIG})
        message = str(caught.value)
        assert message.startswith("stream 'events': a record of 2097"), message
        assert message.endswith("bytes is larger than the limit of 1048576 bytes (the "
                                "producer's max_request_size (kafka-python))"), message
        pub.send({"key": "a", "n": 2, "payload": ""})
    assert len(raw_records(broker, "events", idle_s=1)) == 2


def test_publish_of_a_file_with_a_too_large_line_sends_nothing_and_names_it(
        broker: str, tmp_path: Path) -> None:
    prepare(load_topology(COUNTING), broker)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"key": "a", "n": i, "payload": p}) + b"\n"
                              for i, p in enumerate(["", "", "x" * BIG, ""])))
    done = doa_command("publish", "events", "--broker", broker, "-t", COUNTING, "-f", str(path))
    assert done.returncode == 1
    line = one_line(done.stderr)
    assert "line 3: stream 'events': a record of 2097" in line, line
    assert "larger than the limit of 1048576 bytes" in line, line
    assert line.endswith("; nothing was published"), line
    assert "MessageSizeTooLarge" not in line, line
    assert raw_records(broker, "events", idle_s=1) == {}


@pytest.mark.brokers("kafka", reason="tansu has no max.message.bytes (it takes any size)")
def test_a_stream_whose_max_message_bytes_is_below_the_producers_limits_the_record(
        broker: str, tmp_path: Path) -> None:
    file = _topology(tmp_path, "small", THING, config='{"max.message.bytes": "10000"}')
    t = load_topology(file)
    prepare(t, broker)
    with Publisher("things", broker=broker, topology=t) as pub:
        pub.send({"id": "a", "note": "x" * 9000})
        with pytest.raises(DoaError) as caught:
            pub.send({"id": "b", "note": "x" * 20_000})
    message = str(caught.value)
    assert message.startswith("stream 'things': a record of 20"), message
    assert message.endswith(f"larger than the limit of 10000 bytes (max.message.bytes of "
                            f"stream 'things' on {broker})"), message
    assert len(raw_records(broker, "things", idle_s=1)) == 1


@pytest.mark.brokers("tansu", reason="the check is the Publisher's own, before any send")
def test_a_timestamp_that_is_not_int_ms_is_one_line_naming_the_stream(broker: str,
                                                                      broker_kind: str) -> None:
    # a walk passed time.time() (seconds, a float): kafka-python said "TypeError: 1700030007.5"
    prepare(load_topology(COUNTING), broker)
    with Publisher("events", broker=broker, topology=load_topology(COUNTING)) as pub:
        for bad in (1700030007.5, -1, True):
            with pytest.raises(DoaError) as caught:
                pub.send({"key": "a", "n": 0, "payload": ""},
                         timestamp_ms=bad)  # type: ignore[arg-type]
            assert str(caught.value) == (
                "stream 'events': timestamp_ms must be an int, ms since the epoch (>= 0), got "
                f"{type(bad).__name__} {bad!r}")
        pub.send({"key": "a", "n": 1, "payload": ""}, timestamp_ms=1_700_000_000_000)
    from kafka import KafkaConsumer

    consumer = KafkaConsumer("events", bootstrap_servers=broker, auto_offset_reset="earliest",
                             consumer_timeout_ms=2000, enable_auto_commit=False)
    try:
        assert [m.timestamp for m in consumer] == [1_700_000_000_000]
    finally:
        consumer.close()
