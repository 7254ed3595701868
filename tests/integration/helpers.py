"""Helpers for integration tests: run nodes until inputs are drained, read streams back."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import threading
import time
from typing import Any

from doa.client import Subscriber
from doa.engines import EngineSettings
from doa.engines.launch import RunReport, run_nodes
from doa.events import Event
from doa.topology.topology import Topology
from tests.integration.conftest import doa_process, kill9


def drain(topology: Topology, address: str, expected_in: int, timeout: float = 90.0,
          settings: EngineSettings | None = None, engine: str = "kafka") -> RunReport:
    """Run every node (on ``engine``) until together they have read ``expected_in`` records."""
    def done(stats: dict[str, Any]) -> bool:
        return sum(s.records_in for s in stats.values()) >= expected_in

    return asyncio.run(run_nodes(topology, address, list(topology.nodes), seconds=timeout,
                                 settings=settings, signals=False, until=done, engine=engine))


def assert_metric_equals_progressive_val_score(broker: str, topology: Topology,
                                               rows: list[Any], delay: int) -> None:
    """The learner's last ``metrics`` record (``metrics_every`` = ``len(rows)``) equals River's
    ``progressive_val_score`` of StandardScaler | LogisticRegression with Accuracy on ``rows``
    whose labels come ``delay`` ms after their features; no label went unmatched."""
    import pytest
    from river import evaluate, linear_model, metrics, preprocessing

    reference = evaluate.progressive_val_score(
        rows, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=delay)
    [final] = read_stream(broker, topology, "metrics", 1)
    assert final["labels"] == len(rows)
    assert final["value"] == pytest.approx(reference.get(), abs=1e-12, rel=0)
    assert read_stream(broker, topology, "unmatched", idle_s=1) == []


def read_stream(address: str, topology: Topology | None, stream: str, expected: int | None = None,
                idle_s: float = 3.0) -> list[Event]:
    """Every record of ``stream`` from the beginning: stops at ``expected`` (a fetch stalled
    on a loaded machine does not end it before: only 60 s without a record do), else when
    idle for ``idle_s``."""
    out: list[Event] = []
    with Subscriber([stream], broker=address, topology=topology, from_beginning=True,
                    idle_timeout_s=idle_s if expected is None else max(idle_s, 60.0)) as sub:
        for e in sub:
            out.append(e)
            if expected is not None and len(out) >= expected:
                break
    return out


def raw_records(address: str, stream: str, idle_s: float = 2.0,
                timeout: float = 60.0) -> dict[tuple[int, int], bytes]:
    """Every record's value of ``stream`` by (partition, offset), undecoded: read until
    ``idle_s`` pass without a record *and* the reader is at the end offsets the topic has
    then (idle alone: a loaded machine stalled a fetch past 2 s, and 854 of 1,400 records came
    back; end offsets alone: tansu's lagged a just-flushed publish, 2,786 of 3,008);
    ``timeout`` bounds a hang."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False)
    try:
        tps = [TopicPartition(stream, p) for p in consumer.partitions_for_topic(stream) or []]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        out: dict[tuple[int, int], bytes] = {}
        deadline = time.monotonic() + timeout
        while True:
            batches = consumer.poll(timeout_ms=int(idle_s * 1000))
            for batch in batches.values():
                out.update({(m.partition, m.offset): m.value for m in batch})
            if batches:
                continue
            ends = consumer.end_offsets(tps)
            if all(consumer.position(tp) >= ends[tp] for tp in tps):
                return out
            assert time.monotonic() < deadline, f"{stream}: {len(out)} records read, ends {ends}"
    finally:
        consumer.close()


# -- processes and growing topics (lifecycle, CLI and registry tests) -------------------------


def process_table() -> dict[int, tuple[int, str, str]]:
    """Every live process: pid -> (parent pid, state letter, command line), from /proc."""
    import os

    table: dict[int, tuple[int, str, str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8", errors="replace") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue  # exited while we looked
        # /proc/PID/stat: "pid (comm) state ppid ...": comm may hold spaces and parentheses
        state, ppid = stat[stat.rindex(")") + 2:].split()[:2]
        table[int(entry)] = (int(ppid), state, cmdline)
    return table


def tansu_children(parent: int) -> dict[int, str]:
    """Running tansu brokers whose parent is ``parent``: pid -> command line."""
    return {pid: cmd for pid, (ppid, state, cmd) in process_table().items()
            if ppid == parent and state != "Z" and "tansu" in cmd.split(" ")[0]}


def running(pid: int) -> bool:
    """True if ``pid`` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_until(condition: Any, timeout: float, interval: float = 0.05) -> Any:
    """Poll ``condition()`` until it returns something truthy (returned) or time runs out."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


def doa_env(unset: tuple[str, ...] = ("DOA_BROKER",), **extra: str) -> dict[str, str]:
    """This process's environment without ``unset`` (by default DOA_BROKER), plus ``extra``."""
    import os

    env = {k: v for k, v in os.environ.items() if k not in unset}
    env.update(extra)
    return env


def doa_command(*args: str, env: dict[str, str] | None = None, input: bytes | None = None,
                timeout: float = 60.0) -> Any:
    """Run ``python -m doa.cli.app ARGS`` to completion; a CompletedProcess with bytes output.

    ``env`` replaces the environment (see :func:`doa_env`); by default DOA_BROKER is unset.
    """
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    return subprocess.run([sys.executable, "-m", "doa.cli.app", *args], cwd=root,
                          env=env if env is not None else doa_env(), input=input,
                          capture_output=True, timeout=timeout, check=False)


class Tail:
    """Reads every partition of a topic from the beginning as it grows (kafka-python, no group)."""

    def __init__(self, address: str, topic: str) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.consumer = KafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                      fetch_max_wait_ms=10)
        tps = [TopicPartition(topic, p)
               for p in sorted(self.consumer.partitions_for_topic(topic) or [])]
        self.consumer.assign(tps)
        self.consumer.seek_to_beginning(*tps)
        self.records: list[Any] = []

    def poll(self, timeout_ms: int = 50) -> int:
        """Read what is there (waiting up to ``timeout_ms``); how many records were new."""
        new = [m for batch in self.consumer.poll(timeout_ms=timeout_ms).values() for m in batch]
        self.records.extend(new)
        return len(new)

    def drain(self, idle_ms: int = 1500) -> list[Any]:
        """Read until nothing new arrives for ``idle_ms``; every record read so far."""
        while self.poll(idle_ms):
            pass
        return self.records

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> Tail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def kill9_runs(path: str, broker: str, env: dict[str, str], outcomes: Tail, seed: int,
               runs: int = 3, progress: int = 50, timeout: float = 60.0) -> None:
    """Start ``doa run PATH`` and kill it with SIGKILL, ``runs`` times over.

    Each run is killed once ``outcomes`` has grown by more than ``progress`` records (or
    ``timeout`` seconds bound the wait), after a further 0 to 0.3 s drawn from ``seed``, so
    that the kills land at different points of a batch. The caller starts the final run.
    """
    rnd = random.Random(seed)
    for _ in range(runs):
        worker = doa_process("run", path, "--broker", broker, "-q", env=env)
        seen = len(outcomes.drain(300))
        deadline = time.monotonic() + timeout
        while len(outcomes.records) <= seen + progress and time.monotonic() < deadline:
            outcomes.poll(50)
        time.sleep(rnd.uniform(0.0, 0.3))
        kill9(worker)


class Lines:
    """A process's stderr lines as they come, with the time each arrived."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.items: list[tuple[float, str]] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stderr is not None
        for raw in iter(proc.stderr.readline, b""):
            self.items.append((time.monotonic(), raw.decode(errors="replace").rstrip("\n")))

    def first(self, pattern: str) -> tuple[float, str] | None:
        return next(((t, line) for t, line in self.items if re.search(pattern, line)), None)

    def text(self) -> str:
        self._thread.join(5)
        return "\n".join(line for _, line in self.items)


def one_line(stderr: bytes) -> str:
    """A command's stderr that is one line and no traceback (doa's promise for user errors)."""
    text = stderr.decode()
    assert "Traceback" not in text and "Exception ignored" not in text, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]
