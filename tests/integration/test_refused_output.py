"""An output the broker refuses for good (larger than its topic takes) stops the node with the
broker's error, and no snapshot claims to cover it: once the topic takes it, a restart makes it.

Before, on both engines, the stop that followed the error snapshotted the states of the
refused batch, so a restart made none of its outputs (0 of 12 here).
"""

from __future__ import annotations

import pytest

from doa.client import Publisher
from doa.engines.delivery import OutputsRefused
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain, read_stream

pytestmark = pytest.mark.broker

N = 12


def _limit(broker: str, topic: str, max_bytes: int) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=broker)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic,
                                            configs={"max.message.bytes": str(max_bytes)})])
    finally:
        admin.close()


def _refusing(broker: str) -> Topology:
    """The counting topology, ``N`` events in, and a ``counts`` topic no batch of counts fits."""
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(N):
            pub.send({"key": f"k{i % 3}", "n": i, "payload": ""})
    _limit(broker, "counts", 60)
    return topology


def _run_faust(topology: Topology, broker: str, outputs: int, seconds: float) -> None:
    """The count node on the Faust engine until it wrote ``outputs`` records (or failed)."""
    import asyncio

    from doa.engines.launch import run_nodes

    asyncio.run(run_nodes(topology, broker, ["count"], seconds=seconds, signals=False,
                          engine="faust", until=lambda stats: sum(
                              s.records_out for s in stats.values()) >= outputs))


def _says_what_and_where(message: str) -> None:
    assert "\n" not in message, message
    assert message.startswith("node 'count': the broker refused its outputs to stream 'counts' "
                              "(partition "), message
    assert "MessageSizeTooLargeError: a record batch over the topic's max.message.bytes" in \
        message and "nothing is lost" in message, message


@pytest.mark.brokers("kafka", reason="tansu accepts records of any size; only Apache Kafka "
                                     "refuses one over a topic's max.message.bytes")
def test_a_refused_output_stops_the_node_and_a_restart_makes_it(broker: str) -> None:
    topology = _refusing(broker)
    with pytest.raises(OutputsRefused) as refused:
        drain(topology, broker, N, timeout=60)
    _says_what_and_where(str(refused.value))
    _limit(broker, "counts", 1_048_588)
    report = drain(topology, broker, N, timeout=60)
    assert report.stats["count"].records_in == N  # every input again: nothing was covered
    counts = read_stream(broker, topology, "counts", N, idle_s=2)
    assert sorted(c["n"] for c in counts) == list(range(N))
    assert {(c["key"], c["count"]) for c in counts} == {
        (f"k{k}", c) for k in range(3) for c in range(1, N // 3 + 1)}


@pytest.mark.brokers("kafka", reason="as above")
def test_a_refused_output_on_the_faust_engine_is_made_after_a_restart(broker: str) -> None:
    topology = _refusing(broker)
    with pytest.raises(OutputsRefused) as refused:  # the agent's failure stops the run
        _run_faust(topology, broker, N, seconds=30)
    _says_what_and_where(str(refused.value))
    _limit(broker, "counts", 1_048_588)
    _run_faust(topology, broker, N, seconds=30)
    counts = read_stream(broker, topology, "counts", N, idle_s=2)
    assert sorted(c["n"] for c in counts) == list(range(N))


@pytest.mark.brokers("kafka", reason="as above")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_topic_taking_small_batches_gets_batches_it_takes(broker: str, engine: str) -> None:
    """Each record fits the topic's max.message.bytes, doa's batches (up to 256 KiB) do not:
    the node sizes its batches to the topic's limit and writes everything, on either engine
    (Faust's producer batches up to 16 KiB: 1,000 bytes is below that too). Before, the node
    stopped at its first batch ("the broker refused its outputs"), and a restart could not
    help."""
    n = 300
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    _limit(broker, "counts", 1_000)  # a few records each; 300 counts are ~30 KB
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(n):
            pub.send({"key": f"k{i % 3}", "n": i, "payload": ""})
    if engine == "kafka":
        assert drain(topology, broker, n, timeout=60).stats["count"].records_out == n
    else:
        _run_faust(topology, broker, n, seconds=60)
    counts = read_stream(broker, topology, "counts", n, idle_s=2)
    assert sorted(c["n"] for c in counts) == list(range(n))
    for k in range(3):  # each key's counts in order, in its partition
        mine = [c for c in counts if c["key"] == f"k{k}"]
        assert [c["count"] for c in sorted(mine, key=lambda c: c.offset)] == \
            list(range(1, n // 3 + 1))
