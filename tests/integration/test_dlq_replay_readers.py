"""A replayed record is for the node whose dead letter it was: the other readers of its stream
(a sibling node, a Subscriber) do not get it a second time.

A walk had node ``page`` fail on 56 of 571 alerts; after the fix, ``doa dlq --replay``
re-published the 56 into ``alerts`` and the sibling node ``tally``, which had counted all 571,
counted 627. Both engines skip them, and `doa dlq --replay` (the command) after a fix too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from doa import Topology
from doa.client import Publisher, Subscriber
from doa.dlq import replay
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT
from tests.integration.helpers import doa_command, drain, read_stream

pytestmark = pytest.mark.broker


def twins(name: str, fixed: bool) -> Topology:
    """``tally`` counts every event; ``picky`` fails on payload 'poison' unless ``fixed``."""
    t = Topology(name, schemas=ROOT / "tests" / "schemas")
    events = t.stream("events", schema="testing.Event", key="key", partitions=1)
    tallies = t.stream("tallies", schema="testing.Count", key="key", partitions=1)
    picks = t.stream("picks", schema="testing.Count", key="key", partitions=1)

    def counter(state: dict[str, int], batch: list[Any], picky: bool
                ) -> tuple[dict[str, int], list[Any]]:
        out = []
        for e in batch:
            if picky and not fixed and e["payload"] == "poison":
                raise ValueError("poison")
            state["n"] = state.get("n", 0) + 1
            out.append((e, {"key": e["key"], "n": e["n"], "count": state["n"], "total": 0}))
        return state, out

    t.node(reads=events, writes=tallies, name="tally", state=dict)(
        lambda s, b: counter(s, b, picky=False))
    t.node(reads=events, writes=picks, name="picky", state=dict)(
        lambda s, b: counter(s, b, picky=True))
    return t


@pytest.mark.brokers("tansu", reason="which node a replay is for is doa's, not the broker's")
def test_a_replay_reaches_the_node_that_failed_and_no_other_reader(broker: str,
                                                                   broker_kind: str) -> None:
    broken = twins("twins", fixed=False)
    prepare(broken, broker)
    with Publisher("events", broker=broker, topology=broken) as pub:
        for i in range(10):
            pub.send({"key": "k", "n": i, "payload": "poison" if i in (3, 7) else ""})
    drain(broken, broker, 20)
    assert len(read_stream(broker, broken, "twins.dlq", 2, idle_s=2)) == 2

    fixed = twins("twins", fixed=True)
    report = replay(broker, fixed)
    assert report.replayed == {"events": 2} and report.failed == []
    run = drain(fixed, broker, 4)  # the two replayed records, read by both nodes
    assert [run.stats[n].records_in for n in ("tally", "picky")] == [2, 2]

    tallies = read_stream(broker, fixed, "tallies", idle_s=2)
    picks = read_stream(broker, fixed, "picks", idle_s=2)
    assert [r["n"] for r in tallies] == list(range(10))  # was: 12, the replays counted again
    assert sorted(r["n"] for r in picks) == list(range(10))  # each once, the two at the end
    assert [r["count"] for r in picks] == list(range(1, 11))
    events = read_stream(broker, None, "events", idle_s=2)  # a service reading the stream
    assert sorted(e["n"] for e in events) == list(range(10))


POISON = (3, 8, 13)
SIBLINGS = '''
"""Two nodes read `events`: `count` ({fault}), and `tally`, which counts every event."""
from doa import Topology

topology = Topology("siblings", schemas={schemas!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=2)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=2)
tallies = topology.stream("tallies", schema="testing.Count", key="key", partitions=2)


@topology.node(reads=events, writes=counts, state=dict)
def count(state, batch):
    out = []
    for e in batch:
        if e["payload"] == "poison" and {buggy}:
            raise ValueError(f"poison event n={{e['n']}}")
        state[e["key"]] = state.get(e["key"], 0) + 1
        out.append((e, {{"key": e["key"], "n": e["n"], "count": state[e["key"]], "total": 0}}))
    return state, out


@topology.node(reads=events, writes=tallies, state=lambda: 0)
def tally(state, batch):
    out = []
    for e in batch:
        state += 1
        out.append((e, {{"key": e["key"], "n": e["n"], "count": state, "total": 0}}))
    return state, out
'''


def _topology(tmp_path: Path, buggy: bool) -> tuple[str, Topology]:
    path = tmp_path / ("siblings.py" if buggy else "siblings_fixed.py")
    path.write_text(SIBLINGS.format(schemas=str(ROOT / "tests" / "schemas"), buggy=buggy,
                                    fault="fails on poison" if buggy else "fixed"))
    return str(path), load_topology(str(path))


@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="which node a replay is for is doa's, not the broker's; the kafka "
                            "engine runs on Kafka; CI time")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_replay_reaches_the_failed_node_only(broker: str, tmp_path: Path,
                                               engine: str) -> None:
    _, buggy = _topology(tmp_path, buggy=True)
    prepare(buggy, broker)
    with Publisher("events", broker=broker, topology=buggy) as pub:
        for n in range(20):
            pub.send({"key": f"k{n % 3}", "n": n, "payload": "poison" if n in POISON else ""})
    first = drain(buggy, broker, 40, timeout=120, engine=engine).stats
    assert (first["count"].dead_letters, first["count"].records_out) == (3, 17)
    assert (first["tally"].dead_letters, first["tally"].records_out) == (0, 20)

    fixed_path, fixed = _topology(tmp_path, buggy=False)
    done = doa_command("dlq", fixed_path, "--broker", broker, "--replay", timeout=120)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "replayed 3 dead letters: 3 to events; 0 failed, 0 skipped" in done.stdout.decode()

    # Both nodes read the 3 replayed records; only `count` processes them.
    again = drain(fixed, broker, 6, timeout=120, engine=engine).stats
    assert (again["count"].records_in, again["count"].records_out,
            again["count"].dead_letters) == (3, 3, 0)
    assert (again["tally"].records_in, again["tally"].records_out,
            again["tally"].dead_letters) == (3, 0, 0), "the sibling counted the replays"

    counted = read_stream(broker, fixed, "counts", idle_s=2)
    assert sorted(e["n"] for e in counted) == list(range(20)), "each record counted once"
    tallied = read_stream(broker, fixed, "tallies", idle_s=2)
    assert sorted(e["n"] for e in tallied) == list(range(20))
    assert max(e["count"] for e in tallied) == 20

    with Subscriber(["events"], broker=broker, topology=fixed, from_beginning=True,
                    idle_timeout_s=2) as sub:
        seen = [e["n"] for e in sub]
    assert sorted(seen) == list(range(20)), "a subscriber saw a replay as a new record"
    assert sub.replays == 3
