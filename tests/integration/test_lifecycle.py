"""Process lifecycle on the real broker: graceful stop, `doa run --for`, no orphaned brokers.

* SIGTERM makes a worker finish its batch, snapshot, commit and exit 0; a second run carries
  on exactly where the first stopped: no input is read twice, no output written twice.
* `doa run` without a broker starts an embedded tansu and takes it down with it, whether it
  stops by itself, by SIGTERM, or is killed with SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time
from collections import Counter, defaultdict

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import (
    Tail,
    drain,
    running,
    tansu_children,
    wait_until,
)

pytestmark = pytest.mark.broker

N = 5000


def test_sigterm_stops_gracefully_and_the_next_run_reprocesses_nothing(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    rnd = random.Random(11)
    sent: dict[bytes, dict[str, object]] = {}
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(N):
            rec = {"key": f"k{rnd.randrange(23)}", "n": i, "payload": "p"}
            sent[pub.send(rec)] = rec

    proc = doa_process("run", COUNTING, "--broker", broker, "-q",
                       env={"DOA_MAX_RECORDS": "50"})
    with Tail(broker, "counts") as counts:
        try:
            deadline = time.monotonic() + 40
            while len(counts.records) < 500:
                counts.poll(20)
                assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "the worker produced no outputs in 40 s"
            os.killpg(proc.pid, signal.SIGTERM)
            stopping = time.monotonic()
            out, err = proc.communicate(timeout=15)
            took = time.monotonic() - stopping
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, err.decode()
        assert took < 15
        assert b"stopped by SIGTERM" in out, out.decode()
        first = list(counts.drain(1000))
        assert 500 <= len(first) < N, "SIGTERM must land in the middle of the run"
        assert len({lineage_of(m.headers).id for m in first}) == len(first)  # type: ignore[union-attr]

        # The second run starts from the snapshots and commits the graceful stop wrote.
        report = drain(topology, broker, N - len(first), timeout=40)
        all_out = counts.drain(1500)

    assert report.stats["count"].records_in == N - len(first), (
        f"the first run read {len(first)} records and stopped gracefully, so the second must "
        f"read only the remaining {N - len(first)}; it read {report.stats['count'].records_in}")
    codec = topology.codec("counts")
    ids = Counter(lineage_of(m.headers).id for m in all_out)  # type: ignore[union-attr]
    repeated = sum(n - 1 for n in ids.values() if n > 1)
    assert repeated == 0, f"{repeated} outputs were written twice"
    assert len(all_out) == N

    by_parent: dict[bytes, set[bytes]] = defaultdict(set)
    decoded = []
    for m in all_out:
        lin = lineage_of(m.headers)
        assert lin is not None and len(lin.parents) == 1
        by_parent[lin.parents[0]].add(lin.id)
        decoded.append((m.partition, m.offset, codec.decode(m.value)))
    assert set(by_parent) == set(sent)
    assert all(len(children) == 1 for children in by_parent.values())

    truth: dict[str, list[int]] = defaultdict(list)
    for rec in sent.values():
        truth[str(rec["key"])].append(int(rec["n"]))  # type: ignore[call-overload]
    for key, ns in truth.items():
        got = sorted((d for d in decoded if d[2]["key"] == key), key=lambda d: d[:2])
        assert [d[2]["n"] for d in got] == ns
        assert [d[2]["count"] for d in got] == list(range(1, len(ns) + 1)), (
            f"key {key}: counts must continue from the snapshot across the restart")
        assert got[-1][2]["total"] == sum(ns)


def _start_embedded(*args: str) -> subprocess.Popen[bytes]:
    """`doa run COUNTING ARGS` with neither --broker nor DOA_BROKER: an embedded broker."""
    return doa_process("run", COUNTING, *args, unset=("DOA_BROKER",))


def _its_broker(proc: subprocess.Popen[bytes]) -> tuple[int, int]:
    """Wait for the tansu child of ``proc``; return its pid and port."""
    found = wait_until(lambda: tansu_children(proc.pid) or proc.poll() is not None, 15)
    assert isinstance(found, dict) and found, (
        f"no tansu child of pid {proc.pid} appeared (exit code {proc.poll()})")
    assert len(found) == 1, found
    pid, cmdline = next(iter(found.items()))
    url = cmdline.split("--listener-url ")[1].split(" ")[0]
    return pid, int(url.rsplit(":", 1)[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _cleanup(proc: subprocess.Popen[bytes], tansu: int | None) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    if tansu is not None and running(tansu):
        os.kill(tansu, signal.SIGKILL)


def test_run_for_seconds_with_an_embedded_broker_exits_and_takes_it_down() -> None:
    started = time.monotonic()
    proc = _start_embedded("--for", "3", "-q")
    tansu = None
    try:
        tansu, port = _its_broker(proc)
        out, err = proc.communicate(timeout=20)
        took = time.monotonic() - started
        assert proc.returncode == 0, err.decode()
        assert 3 <= took < 20
        assert b"starting an embedded broker" in err
        assert b"stopped by time" in out and f"127.0.0.1:{port}".encode() in out, out.decode()
        assert not running(tansu), f"tansu (pid {tansu}) outlived `doa run --for 3`"
        assert wait_until(lambda: not _listening(port), 5), f"port {port} still open"
    finally:
        _cleanup(proc, tansu)


def test_kill_9_of_doa_takes_its_embedded_broker_down() -> None:
    proc = _start_embedded("--for", "60", "-q")
    tansu = None
    try:
        tansu, port = _its_broker(proc)
        os.kill(proc.pid, signal.SIGKILL)  # the doa process only, not its group
        proc.wait(timeout=5)
        assert wait_until(lambda: not running(tansu), 5), (  # type: ignore[arg-type]
            f"tansu (pid {tansu}) survived kill -9 of its doa parent")
        # Its leader thread shows as a zombie before the other threads have closed the shared
        # file table, so the listening socket may outlive "not running" by a moment.
        assert wait_until(lambda: not _listening(port), 5), f"port {port} still open"
    finally:
        _cleanup(proc, tansu)


def test_sigterm_of_doa_exits_0_and_takes_its_embedded_broker_down() -> None:
    proc = _start_embedded("--for", "60")  # not quiet: a summary line a second once running
    lines: list[bytes] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, b"")),  # type: ignore[union-attr]
                              daemon=True)
    reader.start()
    tansu = None
    try:
        tansu, port = _its_broker(proc)
        assert wait_until(lambda: any(line.startswith(b"[") for line in lines), 20), (
            b"".join(lines).decode())
        os.kill(proc.pid, signal.SIGTERM)  # the doa process only, not its group
        proc.wait(timeout=15)
        out = proc.stdout.read()  # type: ignore[union-attr]
        reader.join(5)
        assert proc.returncode == 0, b"".join(lines).decode()
        assert b"stopped by SIGTERM" in out, out.decode()
        assert not running(tansu), f"tansu (pid {tansu}) outlived SIGTERM of its doa parent"
        assert wait_until(lambda: not _listening(port), 5), f"port {port} still open"
    finally:
        _cleanup(proc, tansu)
