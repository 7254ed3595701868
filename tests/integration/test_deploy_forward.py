"""``doa deploy`` refuses a schema version that a node still running cannot read.

The walkthrough's case: ``hour`` went from ``int`` (v2) to ``double`` (v3). v3 is BACKWARD
compatible (new readers read old data), so ``doa deploy`` registered it while the v2 node ran;
``doa publish`` then wrote with it and the node dead-lettered every record (``Schema mismatch:
double is not int``). Now deploy reads the running processes' descriptions on
``_doa_topologies`` and refuses, one line naming stream, field, both types and the node,
before anything is registered; a change the node can read (a field added with a default)
still deploys while it runs, and once the node is stopped v3 deploys. ``doa check --broker``
and a ``doa run`` of v3 beside the v2 node say the same.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from doa.catalog.read import read_topologies
from doa.cluster.registry import read_registry
from tests.integration.conftest import doa_process
from tests.integration.helpers import doa_command, one_line, wait_until

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="deploy's check reads _doa_topologies with "
                                                  "doa's own client (the catalog tests run it "
                                                  "on both); CI time")]

BASE = [{"name": "ride_id", "type": "string"}, {"name": "zone", "type": "string"}]
TOPOLOGY = '''
from doa import Topology

topology = Topology("pricing", schemas="schemas")
requests = topology.stream("ride_requests", schema="rides.RideRequest", key="zone",
                           partitions=2)


@topology.node(reads=requests, writes=(), state=lambda: 0)
def price(state, batch):
    return state + len(batch), []
'''


def version(root: Path, name: str, *fields: dict[str, Any]) -> str:
    d = root / name
    (d / "schemas").mkdir(parents=True)
    (d / "schemas" / "ride.avsc").write_text(json.dumps(
        {"type": "record", "name": "RideRequest", "namespace": "rides",
         "fields": [*BASE, *fields]}))
    (d / "pricing.py").write_text(TOPOLOGY)
    return str(d / "pricing.py")


def test_deploy_refuses_a_version_the_running_node_cannot_read(broker: str,
                                                                tmp_path: Path) -> None:
    v2 = version(tmp_path, "v2", {"name": "hour", "type": "int"})
    v3 = version(tmp_path, "v3", {"name": "hour", "type": "double"})
    tip = version(tmp_path, "tip", {"name": "hour", "type": "int"},
                  {"name": "tip", "type": "double", "default": 0.0})
    assert doa_command("deploy", v2, "--broker", broker).returncode == 0
    node = doa_process("run", v2, "--broker", broker, env={"DOA_HEARTBEAT_S": "1"})
    try:
        assert wait_until(lambda: read_topologies(broker).described(), 60), \
            "the node never described itself"
        done = doa_command("deploy", v3, "--broker", broker)
        assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()
        line = one_line(done.stderr)
        assert line.startswith(
            "error: stream 'ride_requests': node 'price' of topology 'pricing' (running: "
            "pricing/"), line
        assert ("reads it with a schema that cannot read this version: field "
                "RideRequest.hour: the writer's double cannot be read as the reader's int; "
                "stop that node first (then deploy, and run it with this schema), or make the "
                "change one it can read") in line, line
        assert [v.version for v in read_registry(broker)["ride_requests"]] == [1], \
            "nothing registered"
        ran = doa_command("run", v3, "--broker", broker, "--for", "1")  # a second process
        assert ran.returncode == 1, ran.stdout.decode()
        assert ("field RideRequest.hour: the writer's double cannot be read as the reader's "
                "int") in ran.stderr.decode(), ran.stderr.decode()
        assert [v.version for v in read_registry(broker)["ride_requests"]] == [1]
        checked = doa_command("check", v3, "--broker", broker)  # says the same
        assert checked.returncode == 1, checked.stdout.decode()
        assert ("field RideRequest.hour: the writer's double cannot be read as the reader's "
                "int") in checked.stderr.decode(), checked.stderr.decode()

        bare = version(tmp_path, "bare", {"name": "hour", "type": "int"},
                       {"name": "tip", "type": "double"})  # no default: refused
        done = doa_command("deploy", bare, "--broker", broker)
        assert done.returncode == 1, done.stderr.decode()
        line = one_line(done.stderr)  # the refusal alone (walk 7: the warnings that the node
        assert line.startswith("error: stream 'ride_requests': new schema is not "), line
        # would not see the new field came first, of a version never registered)

        done = doa_command("deploy", tip, "--broker", broker)  # a field with a default: read
        assert done.returncode == 0, done.stderr.decode()
        assert [v.version for v in read_registry(broker)["ride_requests"]] == [1, 2]
        # ... but not seen by the running node until its restart, which deploy says (walk 6:
        # a new field's values never reached the features, and nothing said so)
        line = one_line(done.stderr)
        assert line.startswith("warning: stream 'ride_requests': node 'price' of topology "
                               "'pricing' (running: pricing/"), line
        assert line.endswith("reads it with a schema without field 'tip': it will not see "
                             "that field (nor pass it on) until it is restarted"), line
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
    assert node.returncode == 0, node.stderr.read().decode() if node.stderr else ""
    # the way out: with the node stopped, v3 deploys
    done = doa_command("deploy", v3, "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert [v.version for v in read_registry(broker)["ride_requests"]] == [1, 2, 3]
