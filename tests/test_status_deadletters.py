"""`doa run`'s status line says which node sends records to the dead-letter stream, and how
many since the line before; and it counts the records a node skipped.

A walk's node dead-lettered one record in ten; the status line read like progress ("in 2000
out 1800 dead 200" beside every other node's "dead 0"). Records a node skips (replays
``doa dlq --replay`` addressed to another node: ``BatchResult.skipped``) were counted by no
stat the status line or the run summary showed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from doa.cli.streams import StatusTicker, stats_table, summary_line
from doa.engines import NodeStats
from doa.events import LINEAGE_HEADER, REPLAY_HEADER, Replay, pack_replay
from doa.observe.meter import MeteredRunner
from doa.runtime.runner import RawRecord
from doa.topology.loader import load_topology

COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


def test_the_line_names_the_nodes_that_dead_letter_and_how_many_more() -> None:
    stats = {"parse": NodeStats(records_in=500, records_out=450, dead_letters=50),
             "count": NodeStats(records_in=450, records_out=450)}
    line = summary_line(10.44, stats, "iot.dlq", before={"parse": 38})
    assert line == ("[  10.4s] parse: in 500 out 450 dead letters 50 (+12) to iot.dlq | "
                    "count: in 450 out 450")
    same = summary_line(11.5, stats, "iot.dlq", before={"parse": 50})
    assert same.split(" | ")[0] == "[  11.5s] parse: in 500 out 450 dead letters 50 to iot.dlq"


def test_the_ticker_marks_a_line_with_new_dead_letters() -> None:
    said: list[tuple[str, bool]] = []
    tick = StatusTicker(dead_letters="iot.dlq", say=lambda line, new: said.append((line, new)))
    stats = {"parse": NodeStats(records_in=10, records_out=10)}
    tick(1.0, stats)
    stats["parse"].records_in, stats["parse"].dead_letters = 20, 3
    tick(2.0, stats)
    stats["parse"].records_in = 30
    tick(3.0, stats)
    assert [new for _, new in said] == [False, True, False]
    assert said[1][0].endswith("parse: in 20 out 10 dead letters 3 (+3) to iot.dlq")
    assert said[2][0].endswith("parse: in 30 out 10 dead letters 3 to iot.dlq")


def test_skipped_records_are_counted_in_the_stats_line_and_summary() -> None:
    from doa.engines.kafka import NodeWorker

    t = load_topology(str(COUNTING))
    value = t.codec("events").encode({"key": "k1", "n": 5, "payload": ""})
    lineage = (LINEAGE_HEADER, b"\x01" + b"\0" * 34)
    other = (REPLAY_HEADER, pack_replay(Replay(1, "events", 0, 2, "tally")))
    batch = [RawRecord("events", 0, 10, 0, b"k1", value, (lineage,)),
             RawRecord("events", 0, 11, 0, b"k1", value, (lineage, other)),
             RawRecord("events", 0, 12, 0, b"k1", value, (lineage, other))]
    worker = NodeWorker(t, t.nodes["count"], "127.0.0.1:1")  # never started: no broker
    worker._step(0, batch)  # the engine's batch path: the runner's result into the stats
    assert isinstance(worker.runner, MeteredRunner)
    assert worker.runner.meter.skipped == {"events": 2}
    assert (worker.stats.records_in, worker.stats.skipped) == (3, 2)

    said: list[str] = []
    StatusTicker(say=lambda line, new: said.append(line))(1.0, {"count": worker.stats})
    assert said == [f"[   1.0s] count: in 3 out {worker.stats.records_out} skipped 2"]
    table = stats_table({"count": worker.stats}, 1.0)
    assert [c.header for c in table.columns][4] == "skipped"
    assert list(table.columns[4].cells) == ["2"]


class Probe:
    """A part of a state that counts how often the state is pickled (a copy before a call)."""

    dumps = 0

    def __reduce__(self) -> tuple[Any, ...]:
        Probe.dumps += 1
        return (Probe, ())


def test_a_step_raising_on_one_record_in_ten_copies_its_state_per_failure_not_per_record() -> None:
    """The batch a node has in hand holds a stop (``--for``, SIGTERM) and its status line:
    a walk's ``doa run --for 10`` stopped 7-29 s late on such a batch, the record-by-record
    retry copying a state of 20,000 entries before each of its 500 records. Now the copies are
    about one per failing record; the outcome is the record-by-record one."""
    t = load_topology(str(COUNTING))
    codec = t.codec("events")
    poison = {i for i in range(100) if i % 10 == 7}
    batch = [RawRecord("events", 0, i, 1000 + i, b"k", codec.encode(
        {"key": f"k{i % 3}", "n": i, "payload": "poison" if i in poison else ""}), ())
        for i in range(100)]
    Probe.dumps = 0
    runner = MeteredRunner(t, t.nodes["count"], clock=lambda: 0)
    result = runner.process({"keys": {}, "probe": Probe()}, batch)
    assert Probe.dumps <= 1 + 2 * len(poison), Probe.dumps  # it was 1 + 100
    assert result.dead_letters == len(poison)
    letters = [t.codec(t.dead_letters.name).decode(o.value) for o in result.outputs
               if o.stream == t.dead_letters.name]
    assert [d["offset"] for d in letters] == sorted(poison)
    one_by_one = MeteredRunner(t, t.nodes["count"], clock=lambda: 0)
    state: Any = {"keys": {}, "probe": Probe()}
    outputs = []
    for raw in batch:
        if raw.offset not in poison:
            alone = one_by_one.process(state, [raw])
            state = alone.state
            outputs.extend(alone.outputs)
    assert result.state["keys"] == state["keys"]
    assert [(o.id, o.value) for o in result.outputs if o.stream == "counts"] == \
        [(o.id, o.value) for o in outputs]
