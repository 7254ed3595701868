"""A local Kafka node's JVM writes a class-data archive once and later nodes map it
(doa.local.kafka_classes); an archive the JVM cannot use changes nothing but the speed.

Checked on real JVMs: the writing node's command line, the archive written at its stop, the
next node's memory maps (the kernel's word that the JVM mapped the file), and each node
serving records. No timing is asserted (the start-up it saves is measured in the module's
docstring and the notes).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from doa.local import apache_kafka
from doa.local.apache_kafka import LocalKafka
from doa.local.kafka_classes import ClassArchive

pytestmark = pytest.mark.usefixtures("kafka_assembly")


def kafka_round_trip(address: str) -> None:
    """One record produced to a new topic and read back: the node serves."""
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=address)  # doa's Kafka creates no topic itself
    admin.create_topics([NewTopic("ping", 1, 1)])
    admin.close()
    producer = KafkaProducer(bootstrap_servers=address)
    producer.send("ping", b"pong").get(timeout=60)
    producer.close()
    consumer = KafkaConsumer("ping", bootstrap_servers=address, auto_offset_reset="earliest",
                             consumer_timeout_ms=30_000)
    try:
        first = next(consumer, None)  # not the whole iteration: it ends after 30 s idle
        assert first is not None and first.value == b"pong"
    finally:
        consumer.close()


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_the_first_node_writes_the_archive_and_the_next_maps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Here(ClassArchive):  # the machine's own archive stays as it is
        def __init__(self, java: str, assembly: object) -> None:
            super().__init__(java, assembly)  # type: ignore[arg-type]
            self.path = tmp_path / self.path.name
            self.failed = tmp_path / self.failed.name

    monkeypatch.setattr(apache_kafka, "ClassArchive", Here)
    monkeypatch.delenv("DOA_KAFKA_CDS", raising=False)
    with LocalKafka() as first:
        args = _cmdline(first.processes[1].pid)
        assert any(a.startswith("-XX:ArchiveClassesAtExit=") for a in args), args
        assert not list(tmp_path.glob("*.jsa"))
        kafka_round_trip(first.address)
    archives = list(tmp_path.glob("*.jsa"))
    assert len(archives) == 1 and archives[0].stat().st_size > 1_000_000, archives
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob("*.failed"))

    with LocalKafka() as second:
        pid = second.processes[1].pid
        assert f"-XX:SharedArchiveFile={archives[0]}" in _cmdline(pid)
        assert str(archives[0]) in _mapped(pid), "the JVM did not map the archive"
        kafka_round_trip(second.address)

    archives[0].chmod(0o644)
    archives[0].write_bytes(os.urandom(65536))  # not an archive: the JVM starts without it
    with LocalKafka() as third:
        assert str(archives[0]) not in _mapped(third.processes[1].pid)
        kafka_round_trip(third.address)


def test_doa_kafka_cds_0_starts_without_one(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOA_KAFKA_CDS", "0")
    with LocalKafka() as kafka:
        args = _cmdline(kafka.processes[1].pid)
        assert not [a for a in args if "Archive" in a], args
        kafka_round_trip(kafka.address)


def test_a_cache_it_may_not_write_starts_without_one(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As in doa's kafka image: the cache is root's, the broker runs as user doa (compose's
    containers could not start before this)."""
    class ReadOnly(ClassArchive):
        def __init__(self, java: str, assembly: object) -> None:
            super().__init__(java, assembly)  # type: ignore[arg-type]
            self.path = tmp_path / "not-a-folder" / self.path.name
            self.failed = tmp_path / "not-a-folder" / self.failed.name

    monkeypatch.setattr(apache_kafka, "ClassArchive", ReadOnly)
    monkeypatch.delenv("DOA_KAFKA_CDS", raising=False)
    with LocalKafka() as kafka:
        assert not [a for a in _cmdline(kafka.processes[1].pid) if "Archive" in a]
        kafka_round_trip(kafka.address)
