"""``LocalKafka(data=DIR)`` (``doa broker --kafka --data DIR``, the compose network's Kafka)
keeps its logs across a stop and a start: the streams, the node's committed offsets and its
snapshots are there again, and the node goes on where it was. Walk 7: the compose Kafka's
container, killed and started again, came back empty (its logs were in a temporary directory
the broker deletes), though the README said its data lives in the container."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.local.apache_kafka import LocalKafka
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain, raw_records, read_stream

pytestmark = pytest.mark.broker


def _publish(address: str, first: int, n: int) -> None:
    with Publisher("events", broker=address, topology=load_topology(COUNTING)) as pub:
        for i in range(first, first + n):
            pub.send({"key": f"k{i % 4}", "n": i, "payload": ""})


@pytest.mark.usefixtures("kafka_assembly")
def test_kept_data_survives_a_killed_kafka_and_the_node_goes_on_from_its_snapshot(
        tmp_path: Path) -> None:
    data = tmp_path / "kafka-data"
    topology = load_topology(COUNTING)
    with LocalKafka(data=data) as kafka:
        home = kafka.home
        prepare(topology, kafka.address)
        _publish(kafka.address, 0, 40)
        assert drain(topology, kafka.address, 40, timeout=60).stats["count"].records_in == 40
    # stop() kills the JVM (SIGKILL, as `docker kill` does): the logs stay, the home goes
    assert home is not None and not home.exists()
    assert sorted(p.name for p in data.iterdir()) == ["node-1"]

    with LocalKafka(data=data) as kafka:
        assert len(raw_records(kafka.address, "events")) == 40
        assert prepare(topology, kafka.address) == []  # topics and schemas are all there
        _publish(kafka.address, 40, 20)
        report = drain(topology, kafka.address, 20, timeout=60)
        assert report.stats["count"].records_in == 20  # from its snapshot, not from the start
        counts = read_stream(kafka.address, topology, "counts", expected=60)
    assert len(counts) == 60
    assert Counter(c["key"] for c in counts) == {f"k{k}": 15 for k in range(4)}
    assert {c["key"]: c["count"] for c in counts} == {f"k{k}": 15 for k in range(4)}
    assert sorted(c["n"] for c in counts) == list(range(60))
