"""The faust engine (doa.engines.faust) on the real embedded broker.

* The example topology gives the same outputs, event ids, dead letters and final state on the
  faust engine as on the kafka engine, for the same input.
* Malformed records and records on which the step raises become dead letters with envelopes.
* Restarts: after kill -9 at random moments and inside a multi-chunk snapshot, the recovered
  state equals that of a run that never crashed, every input is counted exactly once, and
  outputs repeat only with the same id and value (DESIGN invariant 3, as on the kafka engine).
* A user's own Faust app with doa nodes mounted (the README example) runs under `faust worker`,
  also when Faust's web port 6066 is taken, in a data directory of its own.
* `import doa` does not import faust; importing the engine hides sys.argv from faust.
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
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines import EngineSettings
from doa.engines.launch import RunReport, prepare, run_nodes
from doa.events import lineage_of
from doa.local.embedded import EmbeddedBroker
from doa.runtime.snapshot import _head, latest_snapshot
from doa.testing import Harness
from doa.topology.loader import load, load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import COUNTING, ROOT, doa_process, kill9
from tests.integration.helpers import Tail, raw_records, read_stream, wait_until

pytestmark = pytest.mark.broker

SENSORS = str(ROOT / "topologies" / "sensors.py")
README = (ROOT / "README.md").read_text()


def drain(topology: Topology, address: str, expected_in: int, engine: str,
          settings: EngineSettings | None = None) -> RunReport:
    def done(stats: dict[str, Any]) -> bool:
        return sum(s.records_in for s in stats.values()) >= expected_in

    return asyncio.run(run_nodes(topology, address, list(topology.nodes), seconds=60,
                                 settings=settings, signals=False, until=done, engine=engine))


def publish(topology: Topology, address: str, stream: str, records: list[Any]) -> None:
    with Publisher(stream, broker=address, topology=topology) as pub:
        for r in records:
            if isinstance(r, bytes):
                pub.send_raw(r, key=b"sensor-00")
            else:
                pub.send(r)


def latest_states(address: str, topic: str) -> dict[int, Any]:
    values: dict[int, list[bytes]] = defaultdict(list)
    for (p, _offset), value in sorted(raw_records(address, topic).items()):
        values[p].append(value)
    snaps = {p: latest_snapshot(v) for p, v in values.items()}
    return {p: (s.state, s.offsets) for p, s in snaps.items() if s is not None}


def test_example_topology_same_outputs_ids_dead_letters_and_state_on_both_engines() -> None:
    module, topology = load(SENSORS)
    records = [r for _stream, r in module.demo_source(4000, seed=7)]
    seen: dict[str, Any] = {}
    for engine in ("kafka", "faust"):
        with EmbeddedBroker() as b:
            prepare(topology, b.address)
            publish(topology, b.address, "readings", records)
            st = drain(topology, b.address, len(records), engine).stats["flag_spikes"]
            assert (st.records_in, st.dead_letters) == (4000, 4), engine
            alerts = read_stream(b.address, topology, "alerts", st.records_out)
            letters = read_stream(b.address, topology, "sensors.dlq", 4)
            with Tail(b.address, "readings") as tail:
                inputs = {lin.id for m in tail.drain(300) if (lin := lineage_of(m.headers))}
            for a in alerts:  # lineage leads to this broker's input event
                lin = lineage_of(a.headers)
                assert lin is not None and lin.node == "flag_spikes"
                assert lin.parents[0] in inputs
            seen[engine] = (
                {a.id: dict(a) for a in alerts},
                sorted((d["stream"], d["partition"], d["offset"], d["node"], d["error_type"],
                        d["raw"]) for d in letters),
                latest_states(b.address, state_topic(topology, "flag_spikes")),
            )
    kafka, faust = seen["kafka"], seen["faust"]
    assert len(kafka[0]) > 10, "the demo source has spikes: alerts to compare"
    assert faust[0] == kafka[0], "same output values under the same event ids"
    assert faust[1] == kafka[1], "same dead letters"
    assert faust[2] == kafka[2], "same final state and offsets per partition"


def test_malformed_records_and_failing_steps_become_dead_letters_on_faust(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    bad: dict[bytes, str] = {}
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(3000):
            if i % 500 == 7:  # right marker, unknown fingerprint
                payload = b"\xc3\x01" + i.to_bytes(8, "little") + b"junk"
                bad[payload] = "DecodeError/unknown-fingerprint"
                pub.send_raw(payload, key=b"k1")
            elif i % 500 == 9:  # not Avro single-object encoding at all
                payload = b"\x00not avro " + str(i).encode()
                bad[payload] = "DecodeError/bad-marker"
                pub.send_raw(payload, key=b"k2")
            else:
                pub.send({"key": f"k{i % 5}", "n": i, "payload": "poison" if i % 500 == 3 else ""})
    st = drain(topology, broker, 3000, "faust").stats["count"]
    assert (st.records_in, st.dead_letters, st.records_out) == (3000, 18, 2982)

    letters = read_stream(broker, topology, topology.dead_letters.name, 18)
    raw = raw_records(broker, "events")
    assert len(letters) == 18
    for d in letters:
        assert d["stream"] == "events" and d["node"] == "count"
        assert raw[(d["partition"], d["offset"])] == d["raw"], "the envelope points at the record"
        if d["raw"] in bad:
            assert d["error_type"] == bad[d["raw"]]
            assert d["key"] in (b"k1", b"k2")
        else:
            assert d["error_type"] == "ValueError" and "poison event" in d["message"]
            assert topology.codec("events").decode(d["raw"])["n"] % 500 == 3
        lin = lineage_of(d.headers)
        assert lin is not None and lin.node == "count"
    outputs = read_stream(broker, topology, "counts", 2982)
    assert len({o.id for o in outputs}) == 2982


# -- restarts: kill -9 ------------------------------------------------------------------------

N = 10_000
WORKER_ENV = {
    "DOA_MAX_RECORDS": "100",
    "DOA_SNAPSHOT_EVERY_RECORDS": "400",
    "DOA_SNAPSHOT_EVERY_MS": "300",
    "DOA_CHUNK_SIZE": "32768",
    "DOA_TEST_PAD": "600000",  # ~19 chunks per snapshot: a kill can land inside one
}


def test_kill_9_on_faust_recovers_the_state_of_a_run_that_never_crashed(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    rnd = random.Random(5)
    inputs = [{"key": f"k{rnd.randrange(40)}", "n": i, "payload": ""} for i in range(N)]
    publish(topology, broker, "events", inputs)

    def worker() -> subprocess.Popen[bytes]:
        return doa_process("run", COUNTING, "--broker", broker, "--engine", "faust", "--quiet",
                           env=WORKER_ENV)

    outputs, snapshots = Tail(broker, "counts"), Tail(broker, state_topic(topology, "count"))
    torn_kills = 0
    for kill in range(5):  # three kills, or up to five until one has landed inside a snapshot
        if kill >= 3 and _torn(_by_partition(snapshots.drain(300))):
            break
        outputs.drain(idle_ms=300)
        seen = len(outputs.records)
        proc = worker()
        try:
            assert _grows(outputs, seen, 40), _stderr(proc)
            if kill in (0, 2):  # a random moment
                time.sleep(rnd.uniform(0.05, 0.5))
            else:  # right after the first chunk of a snapshot of several chunks
                _first_chunk(snapshots, len(snapshots.records), 30)
                torn_kills += 1
        finally:
            kill9(proc)

    final = worker()
    try:
        assert wait_until(lambda: outputs.poll(200) >= 0 and len(
            {lineage_of(m.headers).id for m in outputs.records}) >= N, 60), _stderr(final)
        time.sleep(0.5)
    finally:
        os.killpg(final.pid, signal.SIGTERM)  # graceful: finish, snapshot, leave
        final.wait(timeout=30)
    assert final.returncode == 0, _stderr(final)

    # outputs: at least once; a repeated id has the same value; ids as a run without crashes
    by_id: dict[bytes, set[bytes]] = defaultdict(set)
    for m in outputs.drain():
        by_id[lineage_of(m.headers).id].add(m.value)  # type: ignore[union-attr]
    assert all(len(v) == 1 for v in by_id.values()), "a repeated id changed value"
    reference = Harness(topology, batch_size=100)
    reference.publish("events", inputs)
    reference.run()
    expected = {lineage_of(r.headers).id: r.value  # type: ignore[union-attr]
                for part in reference.logs["counts"] for r in part}
    assert {i: next(iter(v)) for i, v in by_id.items()} == expected

    # state: equal to the run that never crashed; every input counted once
    values = _by_partition(snapshots.drain())
    for p, state in reference.state("count").items():
        snap = latest_snapshot(values[p])
        assert snap is not None
        assert snap.state["keys"] == state["keys"]
        assert snap.offsets == {"events": len(reference.logs["events"][p])}
    assert sum(c for st in reference.state("count").values() for c, _ in st["keys"].values()) == N
    assert torn_kills >= 1 and _torn(values) >= 1, "no kill landed inside a snapshot"
    # Restarts resume from snapshots (every 400 records per partition), not from the start.
    assert len(outputs.records) - N < 5 * (4 * 400 + 4 * 100)
    outputs.close()
    snapshots.close()


def test_restart_reads_from_the_snapshot_not_from_offsets_faust_committed(broker: str) -> None:
    """Faust commits what its streams acked (every 2.8 s) whatever the snapshots cover: after
    kill -9 the committed offsets may be past the last snapshot. The restart must not trust
    them: here no snapshot was written at all, yet Faust had committed everything."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    inputs = [{"key": f"k{i % 9}", "n": i, "payload": ""} for i in range(3000)]
    publish(topology, broker, "events", inputs)
    proc = doa_process("run", COUNTING, "--broker", broker, "--engine", "faust", "--quiet",
                       env={"DOA_SNAPSHOT_EVERY_MS": "600000",
                            "DOA_SNAPSHOT_EVERY_RECORDS": "1000000"})
    try:
        assert wait_until(lambda: _committed(broker, "counting.count.faust") == 3000, 40), (
            _stderr(proc))
    finally:
        kill9(proc)
    assert not raw_records(broker, state_topic(topology, "count")), "no snapshot was written"

    st = drain(topology, broker, 3000, "faust").stats["count"]
    assert st.records_in == 3000, "everything is read again: the state had seen nothing"
    reference = Harness(topology)
    reference.publish("events", inputs)
    reference.run()
    states = latest_states(broker, state_topic(topology, "count"))
    assert {p: s["keys"] for p, (s, _o) in states.items()} == {
        p: s["keys"] for p, s in reference.state("count").items()}


def _committed(address: str, group: str) -> int:
    """The sum of ``group``'s committed offsets on ``events``."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, group_id=group, enable_auto_commit=False)
    try:
        return sum(consumer.committed(TopicPartition("events", p)) or 0 for p in range(4))
    finally:
        consumer.close()


def _grows(tail: Tail, seen: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tail.poll(20)
        if len(tail.records) > seen:
            return True
    return False


def _first_chunk(snapshots: Tail, start: int, timeout: float) -> None:
    """Return as soon as the first chunk of a snapshot of several chunks is written."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snapshots.poll(5)
        for m in snapshots.records[start:]:
            head = _head(m.value)
            if head is not None and head[1] == 0 and head[2] > 1:
                return
        start = len(snapshots.records)


def _stderr(proc: subprocess.Popen[bytes]) -> str:
    if proc.poll() is None or proc.stderr is None:
        return f"worker {proc.pid} still running"
    return proc.stderr.read().decode(errors="replace")[-3000:]


def _by_partition(messages: list[Any]) -> dict[int, list[bytes]]:
    values: dict[int, list[bytes]] = defaultdict(list)
    for m in messages:
        values[m.partition].append(m.value)
    return values


def _torn(values: dict[int, list[bytes]]) -> int:
    """Snapshots started but never finished (a first chunk not followed by its last)."""
    torn = 0
    for partition_values in values.values():
        open_seq = None
        for v in partition_values:
            seq, index, count = _head(v) or (0, 0, 1)
            if index == 0:
                torn += open_seq is not None
                open_seq = seq if count > 1 else None
            elif index == count - 1:
                open_seq = None
        torn += open_seq is not None
    return torn


# -- a user's Faust app (the README example) and imports --------------------------------------

USER_APP = (ROOT / "examples" / "faust_app.py").read_text()


def test_nodes_mounted_on_a_users_faust_app_run_under_faust_worker(broker: str,
                                                                  tmp_path: Path) -> None:
    module, topology = load(SENSORS)
    prepare(topology, broker)
    records = [r for _stream, r in module.demo_source(3000, seed=7)]
    publish(topology, broker, "readings", records)
    assert USER_APP.split('"""', 2)[2].strip() in README, "README shows examples/faust_app.py"
    app_file = tmp_path / "sensors_app.py"
    app_file.write_text(USER_APP)
    taken = socket.socket()  # Faust's default web port is taken (if not already): no crash
    with contextlib.suppress(OSError):
        taken.bind(("0.0.0.0", 6066))
        taken.listen()
    proc = subprocess.Popen(
        [sys.executable, str(app_file), "worker", "--loglevel", "warn"], cwd=ROOT,
        env={**os.environ, "DOA_BROKER": broker, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, b"")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    from kafka.admin import KafkaAdminClient
    from kafka.errors import KafkaError

    admin = KafkaAdminClient(bootstrap_servers=broker)

    def committed() -> int:  # the app's group commits the offsets of what it processed
        try:
            offsets = admin.list_group_offsets({"sensors-app": None}).get("sensors-app", {})
        except KafkaError:  # the coordinator is moving: ask again
            return 0
        return sum(o.offset for tp, o in offsets.items() if tp.topic == "readings")

    try:
        with Tail(broker, "alerts") as alerts:  # doa wrote alerts; the user's agent read them
            paged = wait_until(lambda: alerts.poll(50) >= 0 and len(alerts.records) >= 10
                               and any(b"page: sensor-" in line for line in lines), 40)
        # Stop only once every reading was processed: the stop's snapshot must then cover
        # them all (a stop before would rightly cover fewer: the CI saw 2,991 once).
        done = wait_until(lambda: committed() >= len(records), 60, interval=0.5)
    finally:
        admin.close()
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(5)
        taken.close()
    out = b"".join(lines).decode(errors="replace")
    assert paged and done, out[-3000:]
    assert proc.returncode == 0, out[-3000:]
    assert "Traceback" not in out and "address already in use" not in out, out[-3000:]
    assert "localhost:6066" not in out, "the web server moved to a free port"
    datadirs = list(Path(tempfile.gettempdir()).glob(f"doa-faust-{proc.pid}-*"))
    assert f"doa-faust-{proc.pid}-" in out and datadirs == [], "a fresh data dir, removed"
    states = latest_states(broker, state_topic(topology, "flag_spikes"))
    assert sum(o["readings"] for _s, o in states.values()) == 3000, "snapshots cover the input"


def test_importing_doa_does_not_import_faust_and_faust_never_sees_argv() -> None:
    code = (
        "import sys\n"
        "import doa, doa.cli.app, doa.engines.launch, doa.engines, doa.engines.kafka\n"
        "assert 'faust' not in sys.modules and 'mode' not in sys.modules\n"
        "sys.argv = ['doa', 'run', 'x.py', '--engine', 'faust', '-L', 'nonsense', '--datadir']\n"
        "import doa.engines.faust\n"
        "assert 'faust' in sys.modules and sys.argv[-1] == '--datadir'\n"
        "import os\n"
        "assert 'FAUST_LOOP' not in os.environ and 'FAUST_DATADIR' not in os.environ\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAUST_", "F_"))}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()


class _HeldProducer:
    """An app producer whose broker acknowledges only when the test says so."""

    def __init__(self) -> None:
        self.futures: list[asyncio.Future[None]] = []

    async def send(self, *args: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.futures.append(future)
        return future


def _mounted_count() -> tuple[Any, Any, list[Any]]:
    """The counting node mounted on a stand-in app whose producer holds every send, its
    partition 0 assigned from the beginning, and 7 records for it."""
    from aiokafka import TopicPartition

    from doa.engines.faust_node import MountedNode
    from doa.runtime.runner import RawRecord

    topology = load_topology(COUNTING)
    codec = topology.codec("events")
    app = type("App", (), {"producer": _HeldProducer()})()
    m = MountedNode(app, topology, topology.nodes["count"], "127.0.0.1:1")
    m._ready.add(0)
    m._next[TopicPartition("events", 0)] = 0
    m.states[0], m.positions[0] = m.node.state(), {}
    m._snapshot_taken(0)  # as on assignment: no snapshot due for the next 5 s
    records = [RawRecord("events", 0, i, 1000 + i, b"k",
                         codec.encode({"key": "k", "n": i, "payload": ""}), ())
               for i in range(7)]
    return m, app, records


def test_a_faust_node_counts_the_outputs_its_broker_has_not_acknowledged() -> None:
    """What the stop line of ``doa run --engine faust`` reports as "N outputs not
    acknowledged" (issue 25): every output of the batch until the broker acknowledges it."""
    m, app, records = _mounted_count()

    async def scenario() -> list[int]:
        seen = []
        batch = asyncio.create_task(m.process(records))
        while len(app.producer.futures) < 7 and not batch.done():
            await asyncio.sleep(0)
        assert not batch.done(), batch.exception()
        seen.append(m.stats.outputs_unacked)
        for future in app.producer.futures[:3]:
            future.set_result(None)
        await asyncio.sleep(0)
        seen.append(m.stats.outputs_unacked)
        assert not batch.done(), "the batch waits for every acknowledgement"
        for future in app.producer.futures[3:]:
            future.set_result(None)
        await batch
        seen.append(m.stats.outputs_unacked)
        return seen

    assert asyncio.run(scenario()) == [7, 4, 0]
    assert (m.stats.records_in, m.stats.records_out) == (7, 7)
    assert m.positions[0] == {"events": 7}


def test_a_faust_node_raises_a_delivery_that_failed_and_counts_it_unacknowledged() -> None:
    """An output the producer could not deliver (here a retriable timeout, given up) stops
    the batch with that error: never taken as acknowledged, so no snapshot covers it."""
    from aiokafka.errors import RequestTimedOutError

    m, app, records = _mounted_count()

    async def scenario() -> None:
        batch = asyncio.create_task(m.process(records))
        while len(app.producer.futures) < 7 and not batch.done():
            await asyncio.sleep(0)
        for future in app.producer.futures[:6]:
            future.set_result(None)
        app.producer.futures[6].set_exception(RequestTimedOutError())
        await batch

    with pytest.raises(RequestTimedOutError):
        asyncio.run(scenario())
    assert m.stats.outputs_unacked == 1
