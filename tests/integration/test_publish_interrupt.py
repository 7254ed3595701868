"""Ctrl-C in the middle of ``doa publish`` (issue 25): it stops before the next record, ends
promptly with one line saying how many records were sent and acknowledged, and the stream
holds what that line says.

* Broker up: exactly the acknowledged records, the first S lines of the file, are on the
  stream (nothing half-sent is counted, nothing counted is missing).
* Broker unresponsive (tansu stopped with SIGSTOP, as a partitioned or hung broker): the
  command still ends within the grace, and once the broker runs again the stream holds at
  least the acknowledged records and nothing beyond the S sent.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import orjson
import pytest

from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process, kill9
from tests.integration.helpers import raw_records, wait_until

pytestmark = pytest.mark.broker

LINES = 60_000  # ~6 s of sending here: Ctrl-C lands mid-send, however fast the machine
GRACE_S = 3.0
LINE = re.compile(r"^interrupted: (\d+) of (\d+) records sent to events"
                  r"(?: and acknowledged|, (at least )?(\d+) acknowledged; \d+ not acknowledged "
                  r"within 3 s \(DOA_SHUTDOWN_GRACE_S\): (?:it|they) may or may not be on the "
                  r"stream)(?:; the other (\d+) were not sent)?$")


def _file(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"key": f"k{i % 17}", "n": i, "payload": ""}) + b"\n"
                              for i in range(LINES)))
    return path


def _sending_started(address: str) -> bool:
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address)
    try:
        ends = consumer.end_offsets([TopicPartition("events", p) for p in range(4)])
    finally:
        consumer.close()
    return sum(ends.values()) > 0


def _interrupt(proc: subprocess.Popen[bytes]) -> tuple[int, str, float]:
    """SIGINT (what Ctrl-C sends to the foreground group); the exit code, stderr and how long
    the command took to end."""
    os.killpg(proc.pid, signal.SIGINT)
    sent = time.monotonic()
    try:
        _, stderr = proc.communicate(timeout=GRACE_S + 30)  # bounds the failure only
    except subprocess.TimeoutExpired:
        kill9(proc)
        pytest.fail("doa publish ignored Ctrl-C for 30 s past its grace")
    return proc.returncode, stderr.decode(), time.monotonic() - sent


def _main_thread_cpu_s(pid: int) -> float:
    """CPU seconds the process's main thread (the send loop) has used: its progress, however
    busy the machine is."""
    fields = Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _numbers(address: str) -> list[int]:
    codec = load_topology(COUNTING).codec("events")
    return [codec.decode(v)["n"] for v in raw_records(address, "events").values()]


def _publish(address: str, path: Path) -> subprocess.Popen[bytes]:
    proc = doa_process("publish", "events", "--broker", address, "-t", COUNTING, "-f",
                       str(path), env={"DOA_SHUTDOWN_GRACE_S": str(GRACE_S)})
    if not wait_until(lambda: _sending_started(address) or proc.poll() is not None, 60):
        kill9(proc)
        pytest.fail("doa publish sent nothing in 60 s")
    assert proc.poll() is None, "the whole file was sent before Ctrl-C: make it longer"
    return proc


def test_ctrl_c_mid_send_says_what_was_sent_and_exactly_that_is_on_the_stream(
        tmp_path: Path) -> None:
    path = _file(tmp_path)
    with EmbeddedBroker() as broker:
        prepare(load_topology(COUNTING), broker.address)
        code, stderr, took = _interrupt(_publish(broker.address, path))
        assert code == 130, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        match = LINE.match(lines[0])
        assert match and "and acknowledged" in lines[0], lines[0]
        sent, total = int(match[1]), int(match[2])
        assert total == LINES and 0 < sent < LINES, lines[0]
        assert int(match[5]) == LINES - sent, lines[0]
        assert took < GRACE_S + 2, f"Ctrl-C took {took:.1f} s to end doa publish"
        numbers = _numbers(broker.address)
    assert sorted(numbers) == list(range(sent)), (
        f"the stream must hold exactly the first {sent} lines, each once "
        f"(it holds {len(numbers)} records)")


def test_ctrl_c_ends_a_publish_whose_broker_stopped_answering(tmp_path: Path) -> None:
    path = _file(tmp_path)
    with EmbeddedBroker() as broker:
        assert broker.process is not None
        prepare(load_topology(COUNTING), broker.address)
        proc = _publish(broker.address, path)
        os.kill(broker.process.pid, signal.SIGSTOP)  # it accepts connections, answers nothing
        try:
            # Records sent from now on cannot be acknowledged; on a busy machine the send loop
            # may not have run at all between the stop and Ctrl-C (CI saw "476 of 60000 sent
            # and acknowledged"), so let it use some CPU first (its progress, not a wait).
            start = _main_thread_cpu_s(proc.pid)
            assert wait_until(lambda: _main_thread_cpu_s(proc.pid) - start >= 0.1
                              or proc.poll() is not None, 60), "doa publish stopped sending"
            assert proc.poll() is None, "the whole file was sent before Ctrl-C: make it longer"
            code, stderr, took = _interrupt(proc)
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        assert code == 130, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in stderr, stderr
        match = LINE.match(lines[0])
        assert match and "and acknowledged" not in lines[0], lines[0]
        sent, acknowledged = int(match[1]), int(match[4])
        assert 0 < sent < LINES and acknowledged < sent, lines[0]
        # the first signal waits the grace (+1 s for a flush stuck in the client), then ends
        assert took < GRACE_S + 4, f"Ctrl-C took {took:.1f} s to end doa publish"
        numbers = _numbers(broker.address)
    print(f"\nbroker unresponsive: {lines[0]} (in {took:.1f} s); on the stream after it ran "
          f"again: {len(numbers)}")
    assert len(set(numbers)) == len(numbers), "each record once"
    assert len(numbers) >= acknowledged, "every acknowledged record is on the stream"
    assert all(n < sent for n in numbers), "nothing that was not sent is on the stream"
