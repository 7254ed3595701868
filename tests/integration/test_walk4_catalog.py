"""walk4 finding 5 (catalog): ``doa catalog`` run while ``doa run`` was starting listed the
node as not alive (only its stopped processes), and 6 s later as alive. A process whose
nodes are still starting (loading a model, restoring snapshots, compiling) now heartbeats
``"status": "starting"``, and the catalog lists it, and its node, as starting; once its nodes
run, at once as running.

The node here starts in ``SLOW_S`` seconds (its start hook sleeps), on the embedded broker.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from doa.catalog import collect
from doa.local.embedded import EmbeddedBroker
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import doa_command, doa_env, wait_until

pytestmark = pytest.mark.broker

SLOW_S = 8
SLOW = f'''
import time

from doa import Topology

topology = Topology("slowstart", schemas={str(ROOT / "tests" / "schemas")!r})
events = topology.stream("events", schema="testing.Event", key="key")
counts = topology.stream("counts", schema="testing.Count", key="key")


@topology.node(reads=events, writes=counts)
def slow(state, batch):
    return state, []


# the start hook of the node's kind (where a kernel compiles, a model loads) takes a while
object.__setattr__(topology.nodes["slow"].spec, "start", lambda: time.sleep({SLOW_S}))
'''


def _node(address: str) -> dict[str, Any] | None:
    return next((n for n in collect(address)["nodes"] if n["name"] == "slow"), None)


def test_a_starting_node_is_listed_as_starting_then_running(tmp_path: Path) -> None:
    topology = tmp_path / "slow.py"
    topology.write_text(SLOW)
    with EmbeddedBroker() as broker:
        env = {"DOA_BROKER": broker.address, "DOA_HEARTBEAT_S": "1",
               "DOA_SHUTDOWN_GRACE_S": "5"}
        run = doa_process("run", str(topology), "-q", env=env)
        try:
            began = time.monotonic()
            assert wait_until(lambda: _node(broker.address) is not None, 60, 0.3), \
                "the process never described itself"
            node = _node(broker.address)
            assert node is not None
            # still in its start hook: alive (heartbeating), but starting, not running
            assert time.monotonic() - began < SLOW_S, "the description came after the start"
            assert [p["status"] for p in node["processes"]] == ["starting"], node
            assert node["alive"] and node["starting"], node
            shown = doa_command("catalog", "--broker", broker.address, env=doa_env())
            assert shown.returncode == 0, shown.stderr.decode()
            assert "slow ◐ starting" in shown.stdout.decode(), shown.stdout.decode()
            assert "starting" in shown.stdout.decode().split("slow ◐", 1)[1]
            assert wait_until(lambda: (lambda n: n is not None and not n["starting"])(
                _node(broker.address)), SLOW_S + 30, 0.3), "never listed as running"
            node = _node(broker.address)
            assert node is not None and node["alive"], node
            assert [p["status"] for p in node["processes"]] == ["running"], node
        finally:
            if run.poll() is None:
                kill9(run)
