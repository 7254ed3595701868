"""A broker replaced by an empty one while a node runs, its topics not made again at once.

Before, on the embedded broker the node's own clients made its topics again (tansu creates any
topic a client asks metadata of, with its default partition count: not the declared one, so a
stream declared with 2 partitions came back with 4 and the node stopped saying partitions were
added); on Kafka the node sat idle and said nothing. Now the node says in one line which of
its topics went and that `doa deploy` makes them again, waits out of its group, and once they
are back starts from the new broker's state: nothing of the lost log is mixed into it, a
restart afterwards goes on from there.

Both engines. The faust engine's clients asked for topic creation too, and after ``doa deploy``
it stopped with "could not read counting.count.state/0 up to offset 1" (tansu); on Kafka it
counted nothing of the new log. It now behaves as the kafka engine does, and while it waits
its log stays quiet (its consumer, kept in the group, fetched partitions of topics that were
gone: hundreds of log lines and a third of a core a second).
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import Lines, Tail, wait_until
from tests.integration.test_broker_emptied import _Fresh

pytestmark = pytest.mark.broker

GONE = r"node 'count': stream 'events' and state topic 'counting\.count\.state' are not on broker"
BACK = r"node 'count': stream 'events' and state topic 'counting\.count\.state' are on broker"


def _publish(address: str, ns: range) -> None:
    with Publisher("events", broker=address, topology=load_topology(COUNTING)) as pub:
        for i in ns:
            pub.send({"key": f"k{i % 7}", "n": i, "payload": "p"})


def _outputs(address: str, n: int) -> list[dict[str, Any]]:
    codec = load_topology(COUNTING).codec("counts")
    with Tail(address, "counts") as counts:
        wait_until(lambda: counts.poll(100) >= 0 and len(counts.records) >= n, 90)
        return [codec.decode(m.value) for m in counts.drain(1000)]


def _counted_from_scratch(outputs: list[dict[str, Any]], ns: range) -> None:
    """Each key's counts and totals are those of the records in ``ns`` alone."""
    by_key: dict[str, list[int]] = {}
    for i in ns:
        by_key.setdefault(f"k{i % 7}", []).append(i)
    for key, mine in by_key.items():
        got = sorted((o["count"], o["total"]) for o in outputs if o["key"] == key)
        assert got == [(c + 1, sum(mine[:c + 1])) for c in range(len(mine))], key


def _quiet_while_waiting(log: Path, seconds: float = 10.0) -> None:
    """The log grows by at most a few lines a second while the node waits (before: the
    consumer's fetcher logged every metadata request for a topic that was gone)."""
    time.sleep(2)  # the group left
    before = log.read_text(errors="replace").count("\n")
    time.sleep(seconds)
    grown = log.read_text(errors="replace").count("\n") - before
    assert grown < 30 * seconds, f"{grown} log lines in {seconds:.0f} s while waiting"


@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="the Faust engine's own waiting; the broker's part is the kafka "
                            "engine's case on Kafka; CI time")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_node_waits_for_its_topics_and_starts_from_the_new_broker(
        tmp_path: Path, broker_kind: str, engine: str, request: pytest.FixtureRequest) -> None:
    topology = load_topology(COUNTING)
    run = ("run", COUNTING, "--broker", "--engine", engine)
    broker = _Fresh(broker_kind, request)
    env = {"DOA_LOG_FILE": str(tmp_path / "doa.log"), "DOA_MAX_RECORDS": "20",
           "DOA_SNAPSHOT_EVERY_MS": "1000"}
    prepare(topology, broker.address)
    proc = doa_process(*run[:3], broker.address, *run[3:], env=env)
    lines = Lines(proc)
    try:
        _publish(broker.address, range(100))
        assert len(_outputs(broker.address, 100)) == 100, lines.text()
        time.sleep(3)  # idle: its last snapshot written (a producer's batch still in flight
        # when the broker goes is sent again to its replacement: the client cannot tell them
        # apart, tansu's cluster id being the same for every one)
        broker.again_empty()  # nothing of the old log, nor the node's snapshots, is there
        wait_until(lambda: lines.first(GONE) is not None, 60)
        said = lines.first(GONE)
        assert said is not None and "`doa deploy` with this topology makes them again" in said[1]
        _quiet_while_waiting(tmp_path / "doa.log")
        prepare(topology, broker.address)
        _publish(broker.address, range(1000, 1050))
        _counted_from_scratch(_outputs(broker.address, 50), range(1000, 1050))
        assert lines.first(BACK) is not None, lines.text()
        assert proc.poll() is None, lines.text()
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, lines.text()

        again = doa_process(*run[:3], broker.address, *run[3:], env=env)
        relines = Lines(again)
        try:
            _publish(broker.address, range(1050, 1070))
            outputs = _outputs(broker.address, 70)
            # one output per input of the new log (a restart may write again what followed
            # its last snapshot, with the same values), counted from the new log alone
            unique = list({o["n"]: o for o in outputs}.values())
            assert sorted(o["n"] for o in unique) == list(range(1000, 1070)), relines.text()
            _counted_from_scratch(unique, range(1000, 1070))
            assert again.poll() is None, relines.text()
        finally:
            if again.poll() is None:
                os.killpg(again.pid, signal.SIGTERM)
                again.wait(timeout=60)
        assert "Traceback" not in lines.text() + relines.text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        broker.broker.stop()
