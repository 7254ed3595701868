"""Records deleted from a stream before a node read them (retention, DeleteRecords): the node
says so in one line per partition naming the stream, partition and offset, reads on from the
log's start, and processes every record the log still holds.

The embedded broker cannot delete records, so this runs on Apache Kafka only.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from doa.client import Publisher
from doa.engines import EngineSettings
from doa.engines.launch import prepare
from doa.events import key_bytes, partition_for
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain

pytestmark = pytest.mark.broker


async def _delete_first(address: str, stream: str, keep_from: dict[int, int]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(stream, p): RecordsToDelete(o)
                                    for p, o in keep_from.items()})
    finally:
        await admin.close()


def test_a_node_reports_records_deleted_before_it_read_them(
        broker: str, broker_kind: str, caplog: pytest.LogCaptureFixture) -> None:
    if broker_kind != "kafka":
        pytest.skip("the embedded broker does not delete records")
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(200):
            pub.send({"key": f"k{i % 8}", "n": i, "payload": ""})
    per_partition = Counter(partition_for(key_bytes(f"k{i % 8}"), 4) for i in range(200))
    keep_from = {p: n // 2 for p, n in per_partition.items()}
    asyncio.run(_delete_first(broker, "events", keep_from))
    left = sum(per_partition.values()) - sum(keep_from.values())
    caplog.set_level(logging.INFO)
    report = drain(topology, broker, left, timeout=60,
                   settings=EngineSettings(max_records=50))
    assert report.stats["count"].records_in == left
    lines = [r.getMessage() for r in caplog.records if "is not in the log" in r.getMessage()]
    assert sorted(lines) == sorted(
        f"events partition {p}: offset 0 is not in the log: retention or DeleteRecords removed "
        "it (the records before the log's start are lost to the nodes reading it), or the log "
        "was made anew; reading on from the log's start" for p in keep_from if keep_from[p] > 0)
    assert not [r for r in caplog.records if r.name.startswith("aiokafka")
                and "out of range" in r.getMessage()]
