"""A compatible schema version deployed while a node runs is read by the node, not dead-lettered.

Before, a running node knew only the versions registered when it started: every record a
publisher wrote with the new version (a field added with a default, ``doa deploy`` accepted it)
became a dead letter ``DecodeError/unknown-fingerprint`` until the node was restarted. Now the
node reads the registry again on a fingerprint it does not know
(:attr:`doa.runtime.runner.NodeRunner.reread`) and decodes the record with that version.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.cluster.registry import read_registry
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process
from tests.integration.helpers import Lines, read_stream, wait_until
from tests.integration.test_schemas_registry import COLOR_DEFAULT, THING_V1, _load, _version

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the registry is read by doa's own client; "
                                                  "CI time")]


def test_a_version_deployed_while_the_node_runs_is_decoded_not_dead_lettered(
        broker: str, tmp_path: Path) -> None:
    v1_file = _version(tmp_path, "v1", THING_V1)
    v1 = load_topology(v1_file)
    prepare(v1, broker)
    log_file = tmp_path / "doa.log"
    node = doa_process("run", v1_file, "--broker", broker,
                       env={"DOA_MAX_IDLE_MS": "100", "DOA_LOG_FILE": str(log_file)})
    lines = Lines(node)
    try:
        with Publisher("things", broker=broker, topology=v1) as pub:
            for i in range(3):
                pub.send({"id": f"a{i}", "value": i})
        assert wait_until(lambda: len(read_stream(broker, v1, "seen", 3, idle_s=1)) == 3, 60), \
            lines.text()

        v2 = _load(tmp_path, "v2", [*THING_V1, COLOR_DEFAULT])
        assert prepare(v2, broker) == ["things"]  # deployed while the node runs
        assert [r.version for r in read_registry(broker)["things"]] == [1, 2]
        with Publisher("things", broker=broker, topology=v2) as pub:
            for i in range(3):
                pub.send({"id": f"b{i}", "value": 10 + i, "color": "red"})
        assert wait_until(lambda: len(read_stream(broker, v1, "seen", 6, idle_s=1)) == 6, 60), \
            lines.text()
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
    seen = read_stream(broker, v1, "seen", idle_s=1)
    # the node's own schema (v1) has no color: the v2 records resolve into it
    assert sorted((e["id"], e["value"], e["color"]) for e in seen) == [
        ("a0", 0, "?"), ("a1", 1, "?"), ("a2", 2, "?"),
        ("b0", 10, "?"), ("b1", 11, "?"), ("b2", 12, "?")]
    assert read_stream(broker, v1, v1.dead_letters.name, idle_s=1) == []
    assert "stream 'things': schema version(s) v2 registered after this process started" in \
        log_file.read_text()
