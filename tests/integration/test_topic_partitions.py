"""A stream's topic that exists with another partition count than the topology declares: fewer
is refused, more is said (a Faust app that forgot prepare() had its topics auto-created with
the broker's default count, and a later doa deploy took them without a word)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from doa.cluster.admin import TopicSpec, ensure_topics
from doa.local.embedded import BrokerError

pytestmark = pytest.mark.broker


def test_more_partitions_than_declared_warn_fewer_are_refused(
        broker: str, caplog: pytest.LogCaptureFixture) -> None:
    asyncio.run(ensure_topics(broker, [TopicSpec("wide", 4), TopicSpec("narrow", 1)]))
    with caplog.at_level(logging.WARNING, logger="doa.cluster.admin"):
        asyncio.run(ensure_topics(broker, [TopicSpec("wide", 2)]))
    # doa's own lines (a busy machine can add kafka-python's "No node available ..." retries)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("doa")] == [
        "topic 'wide' has 4 partitions on the broker, the topology declares 2: doa keys its "
        "records into the first 2 only (declare partitions=4 to use them all)"]
    with pytest.raises(BrokerError) as refused:
        asyncio.run(ensure_topics(broker, [TopicSpec("narrow", 2)]))
    assert str(refused.value) == (
        "topic 'narrow' has 1 partitions on the broker, the topology declares 2: `doa "
        "partitions TOPOLOGY --yes` grows it (a key may then move to another partition and "
        "start its state anew)")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="doa.cluster.admin"):
        asyncio.run(ensure_topics(broker, [TopicSpec("wide", 4)]))
    assert [r for r in caplog.records if r.name.startswith("doa")] == []
