"""An idle node's consumer group shows no lag once its snapshot interval has passed.

A node commits only the offsets its latest snapshot covers (a restart restores that snapshot),
and it snapshots when its interval passes even while idle; that commit must follow at once,
not wait for the next batch, or `doa catalog` and Kafka's own tools show a caught-up, idle
node as thousands of records behind (seen in the catalog of the fraud demo).
"""

from __future__ import annotations

import os
import signal

import pytest
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.broker

N = 300


def _committed(broker: str, group: str) -> int | None:
    """How many records of ``events`` the group has committed (its offsets' sum), or None."""
    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    except KafkaError:  # the coordinator is not there yet
        return None
    finally:
        admin.close()
    return sum(m.offset for tp, m in offsets.items() if tp.topic == "events")


def test_an_idle_node_commits_what_its_snapshot_covers(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    group = f"{topology.name}.count"

    def send(first: int) -> None:
        with Publisher("events", broker=broker, topology=topology) as pub:
            for i in range(first, first + N):
                pub.send({"key": f"k{i % 7}", "n": i, "payload": "p"})

    send(0)
    # A snapshot every 3 s, never by count: the first wave is snapshotted at once (no snapshot
    # yet), the second lands inside the interval, so only an idle snapshot can cover it.
    proc = doa_process("run", COUNTING, "--broker", broker, "-q",
                       env={"DOA_SNAPSHOT_EVERY_MS": "3000",
                            "DOA_SNAPSHOT_EVERY_RECORDS": "100000"})
    try:
        for wave, total in ((0, N), (N, 2 * N)):
            if wave:
                send(wave)
            done = wait_until(lambda t=total: _committed(broker, group) == t  # type: ignore[misc]
                              or proc.poll() is not None, 60)
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            assert done, (f"the idle node's group committed {_committed(broker, group)} of the "
                          f"{total} records 60 s after they were sent: its lag never reaches 0 "
                          "while it idles")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
