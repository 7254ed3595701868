"""Streams keep their records: Apache Kafka's time retention (7 days by record timestamp) does
not delete a stream whose records carry an old event time (a backfill, a replay), while a
topic created with Kafka's defaults loses them at the broker's first retention check.

The embedded broker never deletes anything, so this runs on Apache Kafka only.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from doa.client import Publisher
from doa.cluster.admin import TopicSpec, ensure_topics
from doa.engines.launch import prepare
from doa.local.apache_kafka import LocalKafka
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING

pytestmark = pytest.mark.broker
OLD = 1_700_000_000_000  # November 2023: far past Kafka's default 7-day retention


def _bounds(address: str, topic: str) -> tuple[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=address)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic))]
        first = sum(consumer.beginning_offsets(tps).values())
        end = sum(consumer.end_offsets(tps).values())
        return first, end
    finally:
        consumer.close()


@pytest.mark.usefixtures("kafka_assembly")
def test_a_stream_keeps_records_with_an_old_event_time_past_kafkas_retention_check() -> None:
    topology = load_topology(COUNTING)
    # the retention check runs every second from the start (Kafka: 30 s, then every 5 min)
    with LocalKafka(config={"log.retention.check.interval.ms": 1000,
                            "log.initial.task.delay.ms": 0}) as kafka:
        address = kafka.address
        prepare(topology, address)
        asyncio.run(ensure_topics(address, [TopicSpec("plain", 4)]))  # Kafka's defaults
        with Publisher("events", broker=address, topology=topology) as pub:
            for i in range(100):
                pub.send({"key": f"k{i % 5}", "n": i, "payload": ""}, timestamp_ms=OLD + i)
        producer = KafkaProducer(bootstrap_servers=address)
        for i in range(100):
            producer.send("plain", topology.codec("events").encode(
                {"key": f"k{i % 5}", "n": i, "payload": ""}), partition=i % 4,
                timestamp_ms=OLD + i)
        producer.flush()
        producer.close()
        deadline = time.monotonic() + 60
        while _bounds(address, "plain")[0] < 100 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _bounds(address, "plain") == (100, 100), "Kafka's retention deleted nothing"
        assert _bounds(address, "events") == (0, 100)
