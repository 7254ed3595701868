"""A broker that comes back without its data (a Kafka node whose data directory was lost, a
topic created again): a running node reads the new log from its start.

Its fetch position (the old log's end) is out of range on the new log, the client resets to
the log's start, and the node took only records at or past the position its state expected:
the new log's first records were dropped, silently, while the node said it read on from the
log's start.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import Lines, Tail, wait_until

pytestmark = pytest.mark.broker


def _publish(address: str, n: int, first: int) -> None:
    with Publisher("events", broker=address, topology=load_topology(COUNTING)) as pub:
        for i in range(first, first + n):
            pub.send({"key": f"k{i % 17}", "n": i, "payload": "p"})


def _counted(address: str, n: int) -> list[int]:
    with Tail(address, "counts") as counts:
        wait_until(lambda: counts.poll(100) >= 0 and len(counts.records) >= n, 90)
        return sorted(load_topology(COUNTING).codec("counts").decode(m.value)["n"]
                      for m in counts.drain(1000))


class _Fresh:
    """A broker of ``kind`` that can be stopped and started again empty on the same port."""

    def __init__(self, kind: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        if kind == "kafka":
            request.getfixturevalue("kafka_assembly")
        self.broker = self._start(None)

    def _start(self, port: int | None) -> Any:
        if self.kind == "tansu":
            return EmbeddedBroker(port).start()
        from doa.local.apache_kafka import LocalKafka

        return LocalKafka(port=port).start()  # a data directory of its own: empty

    @property
    def address(self) -> str:
        return str(self.broker.address)

    def again_empty(self) -> None:
        port = int(self.address.rsplit(":", 1)[1])
        self.broker.stop()
        self.broker = self._start(port)


def test_a_node_reads_the_log_of_a_broker_that_came_back_empty(
        tmp_path: Path, broker_kind: str, request: pytest.FixtureRequest) -> None:
    if broker_kind != "kafka":
        pytest.skip("the embedded broker may answer a fetch past the end of a new log with "
                    "nothing instead of out of range: the node then waits for the log to "
                    "reach its offset (noted; its data is in memory and lost anyway)")
    topology = load_topology(COUNTING)
    broker = _Fresh(broker_kind, request)
    env = {"DOA_LOG_FILE": str(tmp_path / "doa.log"), "DOA_MAX_RECORDS": "20"}
    prepare(topology, broker.address)
    proc = doa_process("run", COUNTING, "--broker", broker.address, env=env)
    lines = Lines(proc)
    try:
        _publish(broker.address, 200, 0)
        assert _counted(broker.address, 200) == list(range(200)), lines.text()
        broker.again_empty()  # the data goes with the old one
        prepare(topology, broker.address)
        _publish(broker.address, 60, 1000)
        got = _counted(broker.address, 60)
        assert got == list(range(1000, 1060)), f"{len(got)} of 60 counted\n{lines.text()}"
        assert proc.poll() is None, lines.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        broker.broker.stop()
