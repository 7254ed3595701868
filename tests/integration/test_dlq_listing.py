"""``doa dlq`` lists the letters that exist when it starts and stops: it never waits for more
(it stopped after 2 s without a letter: 4 letters took 3.8 s, ~1.3 s since, most of it
imports). Checked without a clock: letters keep coming while it lists, so a read that waits
for a quiet moment would not end before they stop."""

from __future__ import annotations

import re
import threading

import pytest
from click.testing import CliRunner
from kafka import KafkaProducer

from doa.cli.dlq import dlq_cmd
from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import drain, raw_records

pytestmark = pytest.mark.broker

WRITING_S = 30.0  # letters keep coming for this long, one every 50 ms


def test_the_listing_reads_to_the_end_and_does_not_wait_for_more(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(20):
            pub.send({"key": f"k{i % 3}", "n": i, "payload": "poison" if i % 5 == 0 else ""})
    assert drain(topology, broker, 20, timeout=60).stats["count"].dead_letters == 4
    runner = CliRunner()
    done = runner.invoke(dlq_cmd, [COUNTING, "--broker", broker], catch_exceptions=False)
    assert done.exit_code == 0, done.output
    assert "4 dead letters; 4 not replayed yet" in done.output, done.output
    assert "by node and error" not in done.output  # every letter is listed
    heads = [line for line in done.output.splitlines() if line.startswith("events/")]
    assert len(heads) == 4 and all(re.search(r"ValueError  \(\d+ bytes, key 'k[0-2]'\)$", h)
                                   for h in heads), heads  # the key, what one looks for
    # walk 6: with more letters than listed, the first ones said nothing of the rest
    done = runner.invoke(dlq_cmd, [COUNTING, "--broker", broker, "--limit", "2"],
                         catch_exceptions=False)
    lines = done.output.strip().splitlines()
    assert re.fullmatch(r"by node and error: count \w+ 4", lines[-2]), done.output
    assert lines[-1].startswith("4 dead letters (first 2 shown); 4 not replayed yet"), lines

    letter = next(iter(raw_records(broker, "counting.dlq").values()))
    stop, wrote = threading.Event(), threading.Event()

    def write() -> None:  # the same letter again and again: never a quiet moment
        producer = KafkaProducer(bootstrap_servers=broker, linger_ms=0)
        try:
            while not stop.wait(0.05):
                producer.send("counting.dlq", value=letter, partition=0).get(10)
                wrote.set()
        finally:
            producer.close()

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    assert wrote.wait(30)
    timer = threading.Timer(WRITING_S, stop.set)
    timer.start()
    try:
        done = runner.invoke(dlq_cmd, [COUNTING, "--broker", broker], catch_exceptions=False)
        ended_while_writing = not stop.is_set()
    finally:
        timer.cancel()
        stop.set()
        writer.join(30)
    assert done.exit_code == 0, done.output
    listed = re.search(r"^(\d+) dead letters\b", done.output, re.MULTILINE)
    assert listed is not None and int(listed[1]) > 4, done.output
    assert ended_while_writing, "the listing waited for the letters to stop coming"
