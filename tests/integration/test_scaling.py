"""Two workers of the same node share its partitions through the consumer group."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from doa.client import Publisher
from doa.engines import EngineSettings
from doa.engines.launch import prepare, run_nodes
from doa.events import lineage_of
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import read_stream

pytestmark = pytest.mark.broker

N = 8000


def test_two_workers_split_partitions_and_process_everything_once(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(N // 2):
            pub.send({"key": f"k{i % 40}", "n": i})

    async def main() -> tuple[int, int]:
        stop = asyncio.Event()
        settings = EngineSettings(max_records=50, snapshot_every_records=200)
        first = asyncio.create_task(run_nodes(topology, broker, ["count"], seconds=120,
                                              stop=stop, signals=False, settings=settings))
        await asyncio.sleep(4)  # the first worker owns all four partitions for a while
        second = asyncio.create_task(run_nodes(topology, broker, ["count"], seconds=120,
                                               stop=stop, signals=False, settings=settings))
        await asyncio.sleep(1)
        await asyncio.to_thread(_publish_rest, broker, topology)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while loop.time() < deadline:
            await asyncio.sleep(0.5)
            if len({_id(e) for e in read_stream(broker, topology, "counts", idle_s=0.5)}) >= N:
                break
        stop.set()
        a, b = await asyncio.gather(first, second)
        return a.stats["count"].records_in, b.stats["count"].records_in

    a_in, b_in = asyncio.run(main())
    assert a_in > 0 and b_in > 0, "both workers must have processed records"
    outputs = read_stream(broker, topology, "counts")
    by_id: dict[bytes, set[bytes]] = defaultdict(set)
    for e in outputs:
        by_id[_id(e)].add(repr(sorted(e.items())).encode())
    assert len(by_id) == N
    assert all(len(v) == 1 for v in by_id.values()), "a rebalance changed an output's value"
    final = {}
    for e in outputs:
        final[e["key"]] = max(final.get(e["key"], 0), e["count"])
    assert final == {f"k{k}": N // 40 for k in range(40)}


def _publish_rest(broker: str, topology) -> None:  # type: ignore[no-untyped-def]
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(N // 2, N):
            pub.send({"key": f"k{i % 40}", "n": i})


def _id(e) -> bytes:  # type: ignore[no-untyped-def]
    lin = lineage_of(e.headers)
    assert lin is not None
    return lin.id
