"""Apache Kafka on this machine (doa.local.apache_kafka) and the limits tansu does not have.

* ``LocalKafka`` and ``doa broker --kafka`` start a KRaft node or cluster, serve, and leave
  nothing behind: no JVM and no data directory outlives its parent, even one killed with
  SIGKILL.
* Without Java or Maven the error is one line saying which is missing.
* Kafka refuses records over 1 MB (tansu takes them): snapshots of several MB are chunked
  under that limit and restored.
* State and schema topics are compacted on Kafka (tansu never compacts): after the cleaner
  has really run, a worker still recovers its exact state and every registered schema
  version is still there to decode old payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.cluster.admin import SCHEMAS_TOPIC, state_topic
from doa.engines import EngineSettings
from doa.engines.launch import prepare
from doa.local.apache_kafka import LocalKafka
from doa.runtime.snapshot import _head, latest_snapshot
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, ROOT, doa_process
from tests.integration.helpers import (
    doa_env,
    drain,
    process_table,
    raw_records,
    read_stream,
    running,
    wait_until,
)

pytestmark = pytest.mark.broker

KAFKA_RECORD_LIMIT = 1024 * 1024


def _listening(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _jvms(parent: int) -> dict[int, str]:
    return {pid: cmd for pid, (ppid, state, cmd) in process_table().items()
            if ppid == parent and state != "Z" and "kafka.Kafka" in cmd}


# -- LocalKafka and `doa broker --kafka` ----------------------------------------------------


@pytest.mark.usefixtures("kafka_assembly")
def test_local_kafka_serves_a_topology_and_leaves_nothing_behind() -> None:
    topology = load_topology(COUNTING)
    with LocalKafka() as kafka:
        assert kafka.started_in is not None and kafka.started_in < 30
        print(f"\nApache Kafka {kafka.version}: one KRaft node up in {kafka.started_in:.2f} s")
        home = kafka.home
        assert home is not None and home.exists()
        jvms = [p.pid for p in kafka.processes.values()]
        prepare(topology, kafka.address)
        with Publisher("events", broker=kafka.address, topology=topology) as pub:
            for i in range(200):
                pub.send({"key": f"k{i % 5}", "n": i, "payload": ""})
        report = drain(topology, kafka.address, 200, timeout=60)
        assert report.stats["count"].records_in == 200
        assert len(read_stream(kafka.address, topology, "counts", 200)) == 200
        address = kafka.address
    assert not any(running(pid) for pid in jvms)
    assert not _listening(address)
    assert not home.exists(), "the node's data directory outlived stop()"


@pytest.mark.usefixtures("kafka_assembly")
def test_a_stopped_nodes_ports_stay_held_until_its_kafka_stops() -> None:
    """Another process's LocalKafka must not take the port of a node killed to be restarted
    (the CI saw two tests' Kafkas end up on one port: each read the other's records)."""
    from doa.local.kafka_homes import sweep_stale_homes

    with LocalKafka() as kafka:
        ports = {n.port for n in kafka.nodes} | {n.controller_port for n in kafka.nodes}
        kafka.kill(1)
        assert ports <= sweep_stale_homes(), "a killed node's ports were given up"
        kafka.restart(1)
        assert ports <= sweep_stale_homes()
    assert not ports & sweep_stale_homes(), "a stopped Kafka still holds its ports"


@pytest.mark.usefixtures("kafka_assembly")
def test_doa_broker_kafka_runs_a_cluster_and_its_jvms_die_with_it_even_by_kill_9() -> None:
    from doa.local.embedded import free_port

    for stop in ("SIGTERM", "SIGKILL"):
        port = free_port()
        proc = doa_process("broker", "--kafka", "--brokers", "2", "--port", str(port),
                           unset=("DOA_BROKER",))
        jvms: dict[int, str] = {}
        try:
            line = proc.stderr.readline().decode()  # type: ignore[union-attr]
            assert f"export DOA_BROKER=127.0.0.1:{port}," in line, (
                line + proc.stderr.read().decode())  # type: ignore[union-attr]
            assert "KRaft, 2 nodes" in line, line
            jvms = _jvms(proc.pid)
            assert len(jvms) == 2, jvms
            assert _listening(f"127.0.0.1:{port}")
            if stop == "SIGTERM":
                os.kill(proc.pid, signal.SIGTERM)
                assert proc.wait(timeout=20) == 0
                assert b"broker stopped" in proc.stderr.read()  # type: ignore[union-attr]
            else:
                os.kill(proc.pid, signal.SIGKILL)  # doa only: its JVMs must follow by themselves
                proc.wait(timeout=10)
            gone = wait_until(lambda pids=tuple(jvms): not any(running(p) for p in pids), 10)
            assert gone, f"Kafka JVMs {sorted(jvms)} outlived {stop} of `doa broker --kafka`"
            # A JVM's main thread shows as a zombie while its other threads still exit (and
            # hold its sockets): wait for the port to close as well.
            assert wait_until(lambda at=f"127.0.0.1:{port}": not _listening(at), 10)
            homes = {Path(cmd.split("-Ddoa.kafka.home=", 1)[1].split(" ", 1)[0])
                     for cmd in jvms.values()}
            assert len(homes) == 1 and str(next(iter(homes))).startswith("/"), homes
            # the data directory goes too, even when doa itself was killed (its watchdog)
            assert wait_until(lambda hs=tuple(homes): not any(h.exists() for h in hs), 20), \
                f"{homes} outlived {stop} of `doa broker --kafka`"
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            for pid in jvms:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_without_java_or_maven_the_error_is_one_line(tmp_path: Path) -> None:
    nothing = tmp_path / "bin-empty"
    nothing.mkdir()
    only_java = tmp_path / "bin-java"
    only_java.mkdir()
    import shutil

    java = shutil.which("java")
    if java is not None:
        (only_java / "java").symlink_to(java)
    cases = [(str(nothing), "Java 17"), (str(only_java), "Maven")]
    for path, missing in cases if java is not None else cases[:1]:
        env = doa_env(unset=("DOA_BROKER", "JAVA_HOME"), PATH=path,
                      DOA_KAFKA_CACHE=str(tmp_path / "cache"))
        done = subprocess.run([sys.executable, "-m", "doa.cli.app", "broker", "--kafka"], cwd=ROOT,
                              env=env, capture_output=True, timeout=60, check=False)
        assert done.returncode == 1
        errors = [line for line in done.stderr.decode().splitlines()
                  if line.startswith("error")]
        assert len(errors) == 1 and "Traceback" not in done.stderr.decode(), done.stderr
        assert missing in errors[0], errors[0]


# -- record size: chunked snapshots ---------------------------------------------------------


def test_snapshots_of_several_megabytes_are_chunked_and_restored(
        broker: str, broker_kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    # The brokers differ here: Kafka refuses a record over message.max.bytes (1 MB by
    # default), tansu takes it (DESIGN: it accepted 32 MB). doa must never rely on tansu's.
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    producer = KafkaProducer(bootstrap_servers=broker, max_request_size=4 * KAFKA_RECORD_LIMIT)
    try:
        future = producer.send(state_topic(topology, "count"), b"x" * (2 * KAFKA_RECORD_LIMIT),
                               key=b"too-big", partition=0)
        if broker_kind == "kafka":
            with pytest.raises(KafkaError, match=r"MessageSizeTooLarge|RecordTooLarge"):
                future.get(timeout=30)
        else:
            future.get(timeout=30)  # tansu: no limit
    finally:
        producer.close()

    pad = 3 * 1024 * 1024  # each partition's state: ~3 MB, 6 chunks of 512 KiB
    monkeypatch.setenv("DOA_TEST_PAD", str(pad))
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(400):
            pub.send({"key": f"k{i % 8}", "n": i, "payload": ""})
    settings = EngineSettings(snapshot_every_records=40, snapshot_every_ms=60_000,
                              max_records=40)
    report = drain(topology, broker, 400, timeout=90, settings=settings)
    assert report.stats["count"].records_in == 400
    assert report.stats["count"].snapshots >= 4

    values: dict[int, list[bytes]] = defaultdict(list)
    for (p, _o), value in sorted(raw_records(broker, state_topic(topology, "count")).items()):
        if value.startswith(b"DOAS"):
            values[p].append(value)
    assert values, "no snapshots on the state topic"
    for partition_values in values.values():
        assert max(len(v) for v in partition_values) <= KAFKA_RECORD_LIMIT
        assert max(_head(v)[2] for v in partition_values) >= 6  # type: ignore[index]
        snap = latest_snapshot(partition_values)
        assert snap is not None and len(snap.state["pad"]) == pad

    # A new worker restores the multi-chunk snapshots: it reads only what came after them.
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(400, 440):
            pub.send({"key": f"k{i % 8}", "n": i, "payload": ""})
    again = drain(topology, broker, 40, timeout=90, settings=settings)
    assert again.stats["count"].records_in == 40
    counts = read_stream(broker, topology, "counts", 440)
    final: dict[str, int] = {}
    for e in counts:
        final[e["key"]] = max(final.get(e["key"], 0), e["count"])
    assert final == {f"k{k}": 55 for k in range(8)}, "counts continue from the restored state"


# -- compaction -----------------------------------------------------------------------------

# Small segments and an eager cleaner, so Kafka really compacts within the test.
EAGER_TOPIC = {"segment.ms": "200", "min.cleanable.dirty.ratio": "0.01",
               "min.compaction.lag.ms": "0", "delete.retention.ms": "100"}
EAGER_BROKER = {"log.cleaner.backoff.ms": 200}


async def _describe_and_make_eager(address: str, topics: list[str]) -> dict[str, str]:
    """Each topic's cleanup.policy; then set the eager compaction configs on them."""
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        described = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"cleanup.policy": None})
             for t in topics])
        policies = {}
        for response in described:
            for resource in response.resources:
                for entry in resource[4]:
                    if entry[0] == "cleanup.policy":
                        policies[resource[3]] = entry[1]
        await admin.alter_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {**EAGER_TOPIC, "cleanup.policy":
                                                         "compact"}) for t in topics])
        return policies
    finally:
        await admin.close()


def _cleaned(kafka: LocalKafka) -> dict[tuple[str, int], int]:
    """The log cleaner's checkpoint: how far each compacted partition has been cleaned."""
    assert kafka.home is not None
    out: dict[tuple[str, int], int] = {}
    for path in kafka.home.glob("node-*/data/cleaner-offset-checkpoint"):
        for line in path.read_text().splitlines()[2:]:
            topic, partition, offset = line.split()
            out[(topic, int(partition))] = max(out.get((topic, int(partition)), 0), int(offset))
    return out


@pytest.mark.usefixtures("kafka_assembly")
def test_after_kafka_compacts_state_and_schemas_recovery_and_old_payloads_still_work(
        tmp_path: Path) -> None:
    # Kafka only: tansu accepts cleanup.policy=compact but never compacts (DESIGN lab note).
    from tests.integration.test_schemas_registry import COLOR_DEFAULT, THING_V1, _load

    size_default = {"name": "size", "type": "long", "default": 0}
    rnd = random.Random(4)
    with LocalKafka(config=EAGER_BROKER) as kafka:
        address = kafka.address
        counting = load_topology(COUNTING)
        v1 = _load(tmp_path, "v1", THING_V1)
        prepare(counting, address)
        prepare(v1, address)
        state = state_topic(counting, "count")
        policies = asyncio.run(_describe_and_make_eager(address, [state, SCHEMAS_TOPIC]))
        assert policies == {state: "compact", SCHEMAS_TOPIC: "compact"}

        with Publisher("things", broker=address, topology=v1) as pub:
            old = {pub.send({"id": f"t{i}", "value": i}): i for i in range(10)}
        for name, fields in (("v2", [*THING_V1, COLOR_DEFAULT]),
                             ("v3", [*THING_V1, COLOR_DEFAULT, size_default])):
            time.sleep(0.3)  # the next append rolls the schema topic's segment
            assert prepare(_load(tmp_path, name, fields), address) == ["things"]

        sent: list[dict[str, object]] = []
        settings = EngineSettings(snapshot_every_records=25, snapshot_every_ms=60_000,
                                  max_records=25)
        for round_ in range(30):
            batch = [{"key": f"k{rnd.randrange(6)}", "n": len(sent) + i, "payload": ""}
                     for i in range(100)]
            with Publisher("events", broker=address, topology=counting) as pub:
                for rec in batch:
                    pub.send(rec)
            sent.extend(batch)
            report = drain(counting, address, len(batch), timeout=60, settings=settings)
            assert report.stats["count"].records_in == len(batch), (
                f"round {round_}: the worker must resume from its snapshot")
            time.sleep(0.3)
            cleaned = _cleaned(kafka)
            if (round_ >= 3 and any(t == state and o > 0 for (t, _p), o in cleaned.items())
                    and cleaned.get((SCHEMAS_TOPIC, 0), 0) > 0):
                break
        else:
            raise AssertionError(f"Kafka never compacted the topics: {_cleaned(kafka)}")

        on_state = raw_records(address, state)
        by_partition: dict[int, list[int]] = defaultdict(list)
        for p, o in on_state:
            by_partition[p].append(o)
        assert any(len(offsets) < max(offsets) + 1 for offsets in by_partition.values()), (
            "no snapshot record was compacted away")

        # After compaction: a worker recovers exactly (counts continue), and reads nothing twice.
        last = [{"key": f"k{k}", "n": len(sent) + k, "payload": ""} for k in range(6)]
        with Publisher("events", broker=address, topology=counting) as pub:
            for rec in last:
                pub.send(rec)
        sent.extend(last)
        report = drain(counting, address, len(last), timeout=60, settings=settings)
        assert report.stats["count"].records_in == len(last)
        outputs = {(e["key"], e["n"]): e["count"]
                   for e in read_stream(address, counting, "counts", len(sent))}
        expected: dict[str, int] = defaultdict(int)
        for rec in sent:
            expected[str(rec["key"])] += 1
            assert outputs[(rec["key"], rec["n"])] == expected[str(rec["key"])]

        # Every registered version survived the schema topic's compaction: a reader that
        # takes its schema from the broker decodes version 1 payloads.
        from doa.cluster.registry import read_registry

        assert [r.version for r in read_registry(address)["things"]] == [1, 2, 3]
        read = read_stream(address, None, "things", 10, idle_s=2)
        assert sorted(e["value"] for e in read) == sorted(old.values())
        assert all(e["color"] == "none" and e["size"] == 0 for e in read)


# -- a three-node cluster loses a broker ----------------------------------------------------


@pytest.mark.usefixtures("kafka_assembly")
def test_a_three_node_cluster_keeps_every_record_when_a_broker_is_killed() -> None:
    # Replication factor 3, min.insync.replicas=2, acks=all everywhere (doa's producers):
    # kill -9 one broker in the middle of 50k records, restart it later. Every input is
    # counted exactly once in node state, no output is lost, duplicates (if any) carry the
    # same event id and the same values. The stall a subscriber sees is printed.
    import threading
    from collections import Counter

    from doa.events import lineage_of
    from tests.integration.helpers import Tail

    topology = load_topology(COUNTING)
    n = 50_000
    sent = [{"key": f"k{i % 12}", "n": i, "payload": ""} for i in range(n)]
    with LocalKafka(3, config={"min.insync.replicas": 2}) as kafka:
        address = kafka.address
        prepare(topology, address)
        replicas = asyncio.run(_replicas(address, ["events", "counts",
                                                   state_topic(topology, "count")]))
        assert replicas and all(r == 3 for r in replicas), replicas

        done: list[object] = []
        settings = EngineSettings(max_records=500, snapshot_every_records=5000)
        worker = threading.Thread(target=lambda: done.append(
            drain(topology, address, n, timeout=240, settings=settings)), daemon=True)
        worker.start()
        arrivals: list[tuple[float, int]] = []
        stop = threading.Event()

        def watch() -> None:
            with Tail(address, "counts") as tail:
                while not stop.is_set():
                    tail.poll(50)
                    arrivals.append((time.monotonic(), len(tail.records)))

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        with Publisher("events", broker=address, topology=topology) as pub:
            for rec in sent[: n // 2]:
                pub.send(rec)
        assert wait_until(lambda: bool(arrivals) and arrivals[-1][1] >= n // 4, 120)
        killed_at = time.monotonic()
        kafka.kill(1)  # the first bootstrap address, and a leader of some partitions
        assert wait_until(lambda: len(_live(kafka, 2)) == 2, 30), "node 1 did not leave"
        with Publisher("events", broker=address, topology=topology) as pub:
            for rec in sent[n // 2:]:
                pub.send(rec)
        worker.join(250)
        assert done, "the worker did not read every record after a broker was killed"
        report = done[0]
        assert report.stats["count"].records_in >= n  # type: ignore[attr-defined]
        kafka.restart(1)
        assert wait_until(lambda: len(_live(kafka, 2)) == 3, 60), "node 1 did not come back"
        stop.set()
        watcher.join(10)

        by_id: dict[bytes, set[bytes]] = defaultdict(set)
        outputs = read_stream(address, topology, "counts", idle_s=3)
        for e in outputs:
            by_id[lineage_of(e.headers).id].add(repr(sorted(e.items())).encode())  # type: ignore[union-attr]
        assert len(by_id) == n, f"{n - len(by_id)} outputs lost"
        assert all(len(v) == 1 for v in by_id.values()), "a duplicate differs from its first"
        final: dict[str, int] = {}
        for e in outputs:
            final[e["key"]] = max(final.get(e["key"], 0), e["count"])
        assert final == dict(Counter(str(r["key"]) for r in sent))

        after = [(t, c) for t, c in arrivals if t >= killed_at]
        progress = [t for (t, c), (_, c0) in zip(after[1:], after, strict=False) if c > c0]
        gaps = [b - a for a, b in zip([killed_at, *progress], progress, strict=False)]
        print(f"\nbroker kill: {len(outputs) - n} duplicate outputs, longest output stall "
              f"after the kill {max(gaps, default=0.0):.2f} s")


async def _replicas(address: str, topics: list[str]) -> list[int]:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
        return [len(p["replicas"]) for t in described for p in t["partitions"]]
    finally:
        await admin.close()


def _live(kafka: LocalKafka, node_id: int) -> list[int]:
    from doa.local.embedded import metadata

    try:
        return [b[0] for b in metadata(kafka.node_address(node_id))[0]]
    except (OSError, Exception):
        return []


@pytest.mark.usefixtures("kafka_assembly")
def test_kafkas_default_session_floor_is_one_line_and_the_env_setting_fixes_it() -> None:
    # Kafka's group.min.session.timeout.ms is 6 s; doa's default session (3 s, for fast
    # joins on the embedded broker) is refused there: say so, and how to fix it.
    topology = load_topology(COUNTING)
    with LocalKafka(config={"group.min.session.timeout.ms": 6000}) as kafka:
        address = kafka.address
        env = doa_env()
        env.pop("DOA_SESSION_TIMEOUT_MS", None)
        done = subprocess.run([sys.executable, "-m", "doa.cli.app", "run", COUNTING, "--broker",
                               address, "--for", "30"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 1
        errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert errors == [f"error: node 'count': broker {address} refuses a consumer session "
                          f"timeout of 3000 ms (outside its group.min/max.session.timeout.ms); "
                          f"set DOA_SESSION_TIMEOUT_MS, e.g. DOA_SESSION_TIMEOUT_MS=10000"]
        with Publisher("events", broker=address, topology=topology) as pub:
            for i in range(10):
                pub.send({"key": "s", "n": i, "payload": ""})
        done = subprocess.run([sys.executable, "-m", "doa.cli.app", "run", COUNTING, "--broker",
                               address, "--for", "12"], cwd=ROOT,
                              env={**env, "DOA_SESSION_TIMEOUT_MS": "10000"},
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(e["count"] for e in read_stream(address, topology, "counts")) == list(
            range(1, 11))
