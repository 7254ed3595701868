"""``doa deploy`` names every topic whose partition count it refuses, in one line (it named the
first alone: a newcomer fixed one, deployed, and met the next)."""

from __future__ import annotations

import asyncio

import pytest

from doa.cluster.admin import TopicSpec, ensure_topics
from doa.engines.launch import prepare
from doa.local.embedded import BrokerError
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING

pytestmark = pytest.mark.broker


def _topics(address: str) -> set[str]:
    from aiokafka.admin import AIOKafkaAdminClient

    async def listed() -> set[str]:
        admin = AIOKafkaAdminClient(bootstrap_servers=address)
        await admin.start()
        try:
            return set(await admin.list_topics())
        finally:
            await admin.close()

    return asyncio.run(listed())


def test_deploy_names_every_topic_with_the_wrong_partitions(broker: str) -> None:
    """Topics a client created with the broker's count (or another deploy): one refusal
    naming them all, not the first alone, and nothing created."""
    topology = load_topology(COUNTING)
    asyncio.run(ensure_topics(broker, [TopicSpec("events", 2), TopicSpec("counts", 3),
                                       TopicSpec("counting.count.state", 1)]))
    with pytest.raises(BrokerError) as refused:
        prepare(topology, broker)
    said = str(refused.value)
    assert said == ("3 topics have other partition counts on the broker than the topology "
                    "declares: 'counting.count.state' has 1 (declared 4), 'counts' 3 (declared "
                    "4), 'events' 2 (declared 4): `doa partitions TOPOLOGY --yes` grows them (a "
                    "key may then move to another partition and start its state anew)"), said
    assert "\n" not in said
    assert "counting.dlq" not in _topics(broker), "nothing is created when one is refused"
