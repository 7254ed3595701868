"""``doa dlq`` lists the letters that exist when it starts and stops: it never waits for more
(it stopped after 2 s without a letter: 4 letters took 3.8 s, ~1.3 s now, most of it imports)."""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from doa.cli.dlq import dlq_cmd
from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain

pytestmark = pytest.mark.broker


def test_the_listing_reads_to_the_end_and_does_not_wait_for_more(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(20):
            pub.send({"key": f"k{i % 3}", "n": i, "payload": "poison" if i % 5 == 0 else ""})
    assert drain(topology, broker, 20, timeout=60).stats["count"].dead_letters == 4
    runner = CliRunner()
    timings = []
    for _ in range(3):  # the first one imports
        began = time.monotonic()
        done = runner.invoke(dlq_cmd, [COUNTING, "--broker", broker], catch_exceptions=False)
        timings.append(time.monotonic() - began)
        assert done.exit_code == 0, done.output
        assert "4 dead letters; 4 not replayed yet" in done.output, done.output
    assert min(timings[1:]) < 1.5, timings  # waiting 2 s for more letters is gone
