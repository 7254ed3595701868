"""The two engines on one broker: a node moves between them, and a Faust node stops in time.

* A node run on the kafka engine, then (more input published) on the faust engine, or the
  other way round, ends with the state of one uninterrupted run: the faust engine's group is
  ``TOPOLOGY.NODE.faust`` (the embedded broker refuses a second group protocol in a group even
  once it is empty), and both engines start from the snapshot's offsets (issue 17.2).
* With the broker gone, ``doa run --engine faust --for S`` exits within S + grace + 2 s,
  non-zero, with one line saying what it could not complete and no library log lines
  (issue 25).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from doa.cluster.admin import state_topic
from doa.engines.launch import RunReport, prepare, run_nodes
from doa.local.embedded import EmbeddedBroker
from doa.testing import Harness
from doa.topology.loader import load
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import Lines, wait_until
from tests.integration.test_faust_engine import latest_states, publish

pytestmark = pytest.mark.broker

SENSORS = str(ROOT / "topologies" / "sensors.py")


def drain(topology: Any, address: str, expected_in: int, engine: str) -> RunReport:
    def done(stats: dict[str, Any]) -> bool:
        return sum(s.records_in for s in stats.values()) >= expected_in

    return asyncio.run(run_nodes(topology, address, list(topology.nodes), seconds=90,
                                 signals=False, until=done, engine=engine))


@pytest.mark.brokers("tansu",
                     reason="the two engines' state format is the broker's neither; CI time")
@pytest.mark.parametrize("engines", [("kafka", "faust"), ("faust", "kafka")])
def test_a_node_moved_between_engines_continues_its_state(broker: str,
                                                          engines: tuple[str, str]) -> None:
    module, topology = load(SENSORS)
    records = [r for _s, r in module.demo_source(3000, seed=11) if isinstance(r, dict)]
    first, second = records[:2000], records[2000:]
    prepare(topology, broker)
    publish(topology, broker, "readings", first)
    one = drain(topology, broker, len(first), engines[0]).stats["flag_spikes"]
    assert one.records_in == len(first)
    publish(topology, broker, "readings", second)
    two = drain(topology, broker, len(second), engines[1]).stats["flag_spikes"]
    assert two.records_in == len(second) and two.dead_letters == 0

    reference = Harness(topology)
    reference.publish("readings", records)
    reference.run()
    expected = reference.state("flag_spikes")
    states = latest_states(broker, state_topic(topology, "flag_spikes"))
    assert {p: s for p, (s, _o) in states.items()} == expected, "one uninterrupted run"
    assert {p: o for p, (_s, o) in states.items()} == {
        p: {"readings": len(reference.logs["readings"][p])} for p in expected}
    counts = sum(int(n) for state in expected.values() for n, _m, _m2 in state.values())
    assert counts == len(records), "every reading counted once"


LIBRARY_LINES = ("Unable connect to node", "Unable to update metadata", "Failed fetch messages",
                 "Heartbeat failed", "Group Coordinator", "Marking the coordinator dead",
                 "Traceback", "[^", "aiokafka", "mode.", "faust.")



@pytest.mark.parametrize("stop", ["--for", "SIGTERM"])
def test_faust_node_stops_within_its_grace_period_when_the_broker_is_gone(
        stop: str, tmp_path: Path) -> None:
    module, topology = load(SENSORS)
    records = [r for _s, r in module.demo_source(3000, seed=3) if isinstance(r, dict)]
    run_for, grace = 15.0, 3.0
    broker = EmbeddedBroker().start()
    try:
        prepare(topology, broker.address)
        publish(topology, broker.address, "readings", records)
        args = ("--for", str(run_for)) if stop == "--for" else ()
        proc = doa_process("run", SENSORS, "--broker", broker.address, "--engine", "faust",
                           *args, env={"DOA_SHUTDOWN_GRACE_S": str(grace),
                                       "DOA_LOG_FILE": str(tmp_path / "doa.log"),
                                       # no snapshot before the stop: it always has state
                                       # to write, whatever the load
                                       "DOA_SNAPSHOT_EVERY_MS": "3600000",
                                       "DOA_SNAPSHOT_EVERY_RECORDS": "100000000"})
        lines = Lines(proc)
        # the nodes' start: the first status line "[  1.0s] ..." minus its elapsed time
        found = wait_until(lambda: lines.first(r"^\[\s*[\d.]+s\]") or proc.poll() is not None,
                           90)
        assert isinstance(found, tuple), f"no status line (exit {proc.poll()}):\n{lines.text()}"
        seen, line = found
        started = seen - float(line[1:line.index("s]")])
        # state to lose: a node has read records (on a busy machine the first status lines
        # can come before any)
        assert wait_until(lambda: lines.first(r"^\[\s*[\d.]+s\].*: in [1-9]"), 90), lines.text()
    finally:
        broker.stop()  # the broker and its in-memory log are gone mid-run
    try:
        if stop == "SIGTERM":
            assert wait_until(lambda: lines.first("unreachable; retrying"), 20), lines.text()
            started = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            run_for = 0.0
        proc.wait(timeout=run_for + grace + 30)  # bounds the failure; the claim is below
        took = time.monotonic() - started
    finally:
        if proc.poll() is None:
            kill9(proc)
    text = lines.text()
    assert took <= run_for + grace + 2, f"took {took:.1f} s (allowed {run_for + grace + 2})"
    assert proc.returncode not in (0, None), text
    errors = [line for _, line in lines.items if line.startswith("error:")]
    assert len(errors) == 1, text
    assert errors[0].startswith(f"error: broker {broker.address} unreachable: "), text
    if "(nothing was pending)" in errors[0]:
        # True only if a rebalance wrote the state after the last batch: Faust revokes the
        # partitions when its consumer loses the broker (or its session under CPU load),
        # and the node snapshots them then, if the broker still takes it (tansu is stopped
        # with SIGTERM, and SIGKILL 3 s later). The node's log says so.
        written = (tmp_path / "doa.log").read_text(errors="replace")
        assert "revoked: their state snapshotted" in written, errors[0]
    else:
        assert "not snapshotted" in errors[0] and "reprocessed on restart" in errors[0], \
            errors[0]
    print(f"\n{stop}: stopped in {took:.1f} s: {errors[0]}")
    assert not [x for x in LIBRARY_LINES if x in text], text
