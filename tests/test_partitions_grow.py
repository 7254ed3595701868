"""An input stream that gains partitions while a node runs: the refusal, and what each engine
does with it, without a broker (the broker test: tests/integration/test_partitions_grow.py).

The kafka engine's worker is driven with a consumer and producer that record what they are
asked, the Faust engine's mounted node with an app that has no consumer; a state reader that
fails if used shows that nothing of a grown assignment is loaded.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition

from doa.cluster.admin import outgrown
from doa.engines.kafka import NodeWorker
from doa.local.embedded import BrokerError
from doa.topology.loader import load_topology

COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


def test_outgrown_names_node_stream_both_counts_the_state_topic_and_the_ways_out() -> None:
    error = outgrown("count", "counting.count.state", {"events": 4}, {"events": 6})
    assert isinstance(error, BrokerError)
    assert str(error) == (
        "node 'count': stream 'events' has 6 partitions on the broker, the topology declares 4 "
        "(partitions were added while the node ran; it stopped): declare partitions=6 for it, "
        "then `doa partitions TOPOLOGY --yes` gives the node's state topic "
        "'counting.count.state' 6 too (a key may then move to another partition and start its "
        "state anew), or delete the topic and deploy again")


@pytest.mark.parametrize("have", [{"events": 4}, {"events": 3}, {"events": 0}, {}])
def test_outgrown_is_none_unless_a_stream_has_more_partitions(have: dict[str, int]) -> None:
    assert outgrown("count", "t.count.state", {"events": 4}, have) is None


def test_outgrown_names_the_stream_that_grew_among_several() -> None:
    error = outgrown("join", "t.join.state", {"features": 2, "labels": 2},
                     {"features": 2, "labels": 3})
    assert error is not None and "stream 'labels' has 3 partitions" in str(error)


# -- the kafka engine ---------------------------------------------------------------------------


class Consumer:
    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: list[tuple[TopicPartition, int]] = []

    def partitions_for_topic(self, topic: str) -> set[int]:
        return set(range(self.partitions))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self.seeks.append((tp, 0))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []

    async def send(self, topic: str, value: bytes, **kw: Any) -> asyncio.Future[None]:
        self.sent.append((topic, kw["partition"]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class NoReader:
    """A state reader that lists the broker's topics (all of the node's are there) and must
    not be used otherwise."""

    async def topics(self) -> set[str]:
        return {"events", "counts", "counting.dlq", "counting.count.state"}

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the state topic was read ({name}) for a grown assignment")


def _worker(partitions: int) -> tuple[NodeWorker, Consumer, Producer]:
    topology = load_topology(str(COUNTING))
    worker = NodeWorker(topology, topology.nodes["count"], "127.0.0.1:1")
    consumer, producer = Consumer(partitions), Producer()
    worker._consumer, worker._producer = consumer, producer  # type: ignore[assignment]
    worker._reader = NoReader()
    return worker, consumer, producer


def test_a_grown_assignment_is_not_loaded_and_the_loop_then_stops_with_the_refusal() -> None:
    worker, consumer, producer = _worker(partitions=4)  # the metadata is not refreshed yet
    assigned = {TopicPartition("events", p) for p in range(6)}
    asyncio.run(worker.assigned(assigned))
    assert not worker._ready and not worker.states and not consumer.seeks
    assert worker.refusal is not None
    assert str(worker.refusal).startswith(
        "node 'count': stream 'events' has 6 partitions on the broker, the topology declares 4 ")
    with pytest.raises(BrokerError) as caught:
        asyncio.run(worker._stop_if_outgrown())
    assert caught.value is worker.refusal
    assert not producer.sent, "no state was written for partitions it never had"


def test_an_assignment_within_the_declared_partitions_is_loaded() -> None:
    worker, consumer, _ = _worker(partitions=4)

    async def no_snapshots(partitions: list[int]) -> dict[int, None]:
        return dict.fromkeys(partitions)

    async def nothing_written(snaps: object) -> None:
        return None

    worker.load = no_snapshots  # type: ignore[assignment,method-assign]
    worker._restart_reads = nothing_written  # type: ignore[assignment,method-assign]
    asyncio.run(worker.assigned({TopicPartition("events", p) for p in (1, 3)}))
    assert worker._ready == {1, 3} and worker.refusal is None
    assert sorted(consumer.seeks) == [(TopicPartition("events", 1), 0),
                                      (TopicPartition("events", 3), 0)]
    asyncio.run(worker._stop_if_outgrown())  # nothing grew: carries on


def test_grown_metadata_stops_the_loop_after_a_snapshot_and_a_commit_of_what_it_processed(
        ) -> None:
    worker, consumer, producer = _worker(partitions=6)  # the consumer's metadata: 6
    worker._ready.add(2)
    worker.states[2] = worker.node.state()
    worker.positions[2] = {"events": 40}  # processed up to offset 39 ...
    worker.covered[2] = {"events": 25}  # ... its last snapshot covered 0..24
    worker._since_snapshot[2] = 15
    with pytest.raises(BrokerError, match="has 6 partitions on the broker, the topology "
                                          "declares 4"):
        asyncio.run(worker._stop_if_outgrown())
    assert producer.sent and {t for t, _p in producer.sent} == {"counting.count.state"}
    assert {p for _t, p in producer.sent} == {2}
    assert consumer.commits == [{TopicPartition("events", 2): 40}]


# -- the Faust engine (no faust needed: the mounted node does not import it) --------------------


class App:
    consumer = None  # no consumer thread: no metadata to read


def _mounted() -> Any:
    from doa.engines.faust_node import MountedNode

    topology = load_topology(str(COUNTING))
    node = MountedNode(App(), topology, topology.nodes["count"], "127.0.0.1:1")
    node._warmed = True
    node._reader = NoReader()
    return node


def test_faust_a_grown_assignment_is_not_loaded_and_the_revoked_snapshots_are_committed() -> None:
    node = _mounted()
    node.covered = {0: {"events": 10}, 1: {"events": 20}, 3: {"events": 7}}
    node._ready = {0, 1, 3}
    node._forget({0, 1, 3})  # the rebalance's revocation (after their snapshots)
    assigned = [("events", p) for p in range(6)]
    offsets = asyncio.run(node.assign(assigned))
    assert offsets == {TopicPartition("events", 0): 10, TopicPartition("events", 1): 20,
                       TopicPartition("events", 3): 7}
    assert not node._ready and not node.states
    assert node.refusal is not None and "has 6 partitions" in str(node.refusal)


def test_faust_partition_counts_read_the_consumer_thread_metadata() -> None:
    from doa.engines.faust_node import partition_counts

    class Thread:
        _consumer = Consumer(6)

    class Faust:
        _thread = Thread()

    class WithConsumer:
        consumer = Faust()

    assert partition_counts(WithConsumer(), ["events"]) == {"events": 6}
    assert partition_counts(App(), ["events"]) == {}
