"""Two topologies on one broker writing one stream: ``prepare`` (``doa run``, ``doa deploy``) and
``doa check --broker`` refuse it, naming the other topology and its node, unless the stream is
declared ``shared=True``; the other topology is known from its description on
``_doa_topologies`` (a real :class:`doa.catalog.publish.Announcer`, or description records
written as it writes them, with chosen times).

The behaviour under test is doa's reading of its own topic, not the broker's: tansu only, the
broker that never compacts (every description ever written stays on the topic).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from doa import Topology
from doa.catalog.describe import (
    DESCRIPTIONS,
    PARTITIONS,
    TOPIC,
    describe_process,
    encode,
    process_key,
)
from doa.catalog.publish import Announcer
from doa.cli.app import cli
from doa.engines.launch import prepare
from doa.errors import DoaError
from tests.integration.helpers import wait_until

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="doa's own topic read back; tansu keeps "
                                                  "every description (no compaction)")]

MODULE = '''
import os
from doa import Topology

topology = Topology("walk")
tx = topology.stream("tx", schema="doa.Metric")
scores = topology.stream("scores", schema="doa.Metric",
                         shared=os.environ.get("TEST_SHARED") == "1")

@topology.node(reads="tx", writes="scores")
def fraud(state, batch):
    return state, []
'''
HOUR_MS = 3_600_000


def scoring(name: str, node: str, *, writes: str = "scores", shared: bool = False) -> Topology:
    """A topology ``name`` whose node ``node`` reads ``tx`` and writes ``writes``."""
    t = Topology(name)
    t.stream("tx", schema="doa.Metric")
    t.stream(writes, schema="doa.Metric", shared=shared)
    t.node(reads="tx", writes=writes, name=node)(lambda state, batch: (state, []))
    return t


def description(topology: Topology, pid: int, started_ms: int,
                status: str = "running") -> dict[str, Any]:
    """The description a process ``pid`` of ``topology`` started at ``started_ms`` writes."""
    d = describe_process(topology, list(topology.nodes), "kafka", 5.0, host="elsewhere",
                         pid=pid, now_ms=started_ms)
    return {**d, "status": status}


def describe(address: str, *descriptions: dict[str, Any]) -> None:
    """Write ``descriptions`` on ``_doa_topologies`` as announcers write them (the test
    chooses their times)."""
    from kafka import KafkaProducer

    from doa.cluster.admin import COMPACT, TopicSpec, ensure_topics

    asyncio.run(ensure_topics(address, [TopicSpec(TOPIC, PARTITIONS, dict(COMPACT))]))
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=5)
    try:
        sent = [producer.send(TOPIC, key=process_key(d).encode(), value=encode(d),
                              partition=DESCRIPTIONS) for d in descriptions]
        for future in sent:
            future.get(timeout=10)
    finally:
        producer.close()


@pytest.fixture
def flaky(broker: str) -> Iterator[Announcer]:
    """Topology ``walkvflaky`` running on ``broker``: its node ``m`` writes ``scores``."""
    announcer = Announcer(scoring("walkvflaky", "m"), broker, ["m"], "kafka", interval_s=1.0)
    announcer.start()
    try:
        assert wait_until(lambda: announcer.sent >= 1, 20), "the description was never sent"
        yield announcer
    finally:
        announcer.stop()


def test_prepare_refuses_a_stream_another_running_topology_writes(
        broker: str, flaky: Announcer) -> None:
    with pytest.raises(DoaError) as caught:
        prepare(scoring("walk", "fraud"), broker)
    assert str(caught.value) == (
        f"stream 'scores' is written by node 'm' of topology 'walkvflaky' (running) too "
        f"(described on {broker}); declare it with shared=True if that is intended, or give "
        "this topology's stream another name")

    prepare(scoring("walk", "fraud", shared=True), broker)  # declared shared: allowed
    prepare(scoring("walk", "fraud", writes="walk.scores"), broker)  # another name: allowed
    prepare(scoring("walkvflaky", "m"), broker)  # its own description is not another's


def test_check_and_deploy_refuse_it_too(broker: str, flaky: Announcer, tmp_path: Path) -> None:
    module = tmp_path / "walk.py"
    module.write_text(MODULE)
    line = (f"stream 'scores' is written by node 'm' of topology 'walkvflaky' (running) too "
            f"(described on {broker})")

    result = CliRunner().invoke(cli, ["check", str(module), "--broker", broker])
    assert result.exit_code == 1, result.output
    assert line in " ".join(result.output.split()), result.output
    assert "ok:" not in result.output

    result = CliRunner().invoke(cli, ["deploy", str(module), "--broker", broker])
    assert isinstance(result.exception, DoaError), result.output
    assert str(result.exception).startswith(line)

    result = CliRunner().invoke(cli, ["check", str(module), "--broker", broker],
                                env={"TEST_SHARED": "1"})
    assert result.exit_code == 0 and "ok:" in result.output, result.output


def test_a_stopped_topology_counts_with_its_age_a_forgotten_one_does_not(broker: str) -> None:
    now = int(time.time() * 1000)
    describe(broker, description(scoring("old", "m"), 1, now - 2 * HOUR_MS, "stopped"),
             description(scoring("older", "n"), 2, now - 48 * HOUR_MS))

    with pytest.raises(DoaError) as caught:
        prepare(scoring("walk", "fraud"), broker)
    assert str(caught.value) == (
        f"stream 'scores' is written by node 'm' of topology 'old' (not running, last seen "
        f"2 h ago) too (described on {broker}; a topology not seen for 24 h no longer counts, "
        "and `doa catalog forget old` forgets it now); declare it with shared=True if that is "
        "intended, or give this topology's stream "
        "another name")  # one line: 'older' (seen 48 h ago) is forgotten, as the catalog does


def test_only_the_latest_description_of_a_topology_counts(broker: str) -> None:
    now = int(time.time() * 1000)
    before, renamed = scoring("walkvflaky", "m"), scoring("walkvflaky", "m", writes="f.scores")
    describe(broker, description(before, 1, now - 2000), description(renamed, 2, now),
             description(before, 1, now - 2000, "stopped"))  # stopped after the newer started

    prepare(scoring("walk", "fraud"), broker)  # walkvflaky's latest writes f.scores

    describe(broker, description(before, 3, now + 1))  # started again, writing scores
    with pytest.raises(DoaError, match=r"^stream 'scores' is written by node 'm' of "
                                       r"topology 'walkvflaky' \(running\) too"):
        prepare(scoring("walk", "fraud"), broker)
