"""`doa run --metrics-port`: the counters on /metrics equal what the node did, as the log shows.

A real `doa run` process runs the counting topology on the embedded broker over known input:
good events, ``poison`` events its step raises on, and bodies that are not Avro at all. The
exposition is parsed with prometheus_client's parser, and each counter is compared with the
log: the records on the output stream, the dead letters on the topology's dead-letter stream,
the snapshot records on the node's state topic.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, ROOT
from tests.integration.helpers import doa_env, raw_records, read_stream, wait_until

pytestmark = pytest.mark.broker

GOOD = 60
POISON = {7, 19, 31, 43}  # n of the events the step raises on
GARBAGE = [b"\x00not avro %d" % i for i in range(5)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on /metrics: (name, sorted labels) -> value ({} if not answering yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return {}
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))


@pytest.mark.brokers("tansu", reason="the counters are the engine's; the broker kind changes "
                                     "nothing they count")
def test_metrics_equal_what_the_node_processed_and_dead_lettered(
        broker: str, tmp_path: Path) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for n in range(GOOD):
            pub.send({"key": f"k{n % 5}", "n": n, "payload": "poison" if n in POISON else ""})
        for raw in GARBAGE:
            pub.send_raw(raw, key=b"k1")
    expected_in = GOOD + len(GARBAGE)
    port = free_port()
    env = doa_env(DOA_LOG_FILE=str(tmp_path / "doa.log"), DOA_MAX_RECORDS="20",
                  DOA_SNAPSHOT_EVERY_RECORDS="10", DOA_SNAPSHOT_EVERY_MS="600000",
                  DOA_SHUTDOWN_GRACE_S="5")
    with open(tmp_path / "out", "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "doa.cli.app", "run", COUNTING, "--broker", broker, "-q",
             "--metrics-port", str(port), "--for", "120"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        node = {"topology": "counting", "node": "count"}

        def drained() -> dict[Any, float]:
            s = scrape(port)
            done = total(s, "doa_records_in_total", **node) >= expected_in and \
                total(s, "doa_consumer_lag_records", **node) == 0
            return s if done else {}

        samples = wait_until(drained, timeout=60, interval=0.2)
        assert samples, (tmp_path / "out").read_text()
        assert total(samples, "doa_records_in_total", stream="events", **node) == expected_in

        # The log says what was processed: outputs on `counts`, envelopes on the dead letters.
        outputs = read_stream(broker, topology, "counts", GOOD - len(POISON))
        letters = read_stream(broker, topology, topology.dead_letters.name,
                              len(POISON) + len(GARBAGE))
        assert len(outputs) == GOOD - len(POISON)
        assert {e["stream"] for e in letters} == {"events"}
        assert total(samples, "doa_records_out_total", stream="counts", **node) == len(outputs)
        assert total(samples, "doa_records_dead_lettered_total", stream="events", **node) == \
            len(letters) == len(POISON) + len(GARBAGE)

        # One histogram observation per partition batch; the sizes add up to the records in.
        assert total(samples, "doa_batch_records_sum", **node) == expected_in
        batches = total(samples, "doa_batch_records_count", **node)
        assert batches >= expected_in / 20
        assert total(samples, "doa_step_seconds_count", **node) == batches
        assert total(samples, "doa_step_seconds_bucket", le="+Inf", **node) == batches
        lags = [k for k in samples if k[0] == "doa_consumer_lag_records"]
        assert sorted(dict(ls)["partition"] for _, ls in lags) == ["0", "1", "2", "3"]
        assert total(samples, "doa_partitions_assigned", **node) == 4

        # Snapshots: as many, and as many bytes, as the state topic holds (one chunk each).
        topic = state_topic(topology, "count")

        def snapshots_match() -> bool:
            values = list(raw_records(broker, topic, idle_s=1.0).values())
            s = scrape(port)
            return bool(values) and total(s, "doa_snapshots_total", **node) == len(values) \
                and total(s, "doa_snapshot_bytes_total", **node) == sum(map(len, values))

        assert wait_until(snapshots_match, timeout=30, interval=0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp_path / "out").read_text()
    assert scrape(port) == {}  # the endpoint went with the process
