"""Finding F7: a stale copy of the project, whose node ``calibrate`` has other step code,
started with ``doa run ... --nodes calibrate`` joined the node's consumer group silently and
dead-lettered what the others processed fine.

Each process's description on ``_doa_topologies`` carries its nodes' step fingerprints
(:func:`doa.catalog.describe.step_code`): ``doa catalog`` warns (text and ``--json``) when
live processes of one node run different code, naming the processes per variant, and
``doa run`` warns at start, one ``warning:`` line, when a live process of its node runs other
code. Neither refuses (a rolling upgrade mixes versions for a while).

Two real processes on a real broker, from two topology files in two folders that differ only
in the step's body.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from doa.catalog import collect
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import Lines, doa_command, doa_env, wait_until

pytestmark = [pytest.mark.broker, pytest.mark.brokers(
    "tansu", reason="the step fingerprint and the catalog's warning are broker-independent "
                    "(test_assignment_lines runs both); CI time")]

TOPOLOGY = '''
from doa import Topology

topology = Topology("walkcode", schemas={schemas!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=2)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=2)


@topology.node(reads=events, writes=counts)
def calibrate(state, batch):
    {body}
'''
GOOD = "return state, []"
STALE = "return state, [(e, 1 / 0) for e in batch]  # the stale copy: raises on every input"


def _write(folder: Path, body: str) -> Path:
    folder.mkdir()
    path = folder / "walkcode.py"
    path.write_text(TOPOLOGY.format(schemas=str(ROOT / "tests" / "schemas"), body=body))
    return path


def _running(catalog: dict[str, Any]) -> list[dict[str, Any]]:
    node = next((n for n in catalog["nodes"] if n["name"] == "calibrate"), None)
    return [p for p in (node or {}).get("processes", ()) if p["status"] == "running"]


def test_processes_of_one_node_with_other_step_code_are_warned_of(broker: str,
                                                                  tmp_path: Path) -> None:
    good = _write(tmp_path / "project", GOOD)
    stale = _write(tmp_path / "stale", STALE)
    env = {"DOA_BROKER": broker, "DOA_HEARTBEAT_S": "1", "DOA_SHUTDOWN_GRACE_S": "5"}
    first = doa_process("run", str(good), "--nodes", "calibrate", "-q", env=env)
    second = None
    try:
        assert wait_until(lambda: len(_running(collect(broker))) == 1, 90, 0.5), \
            "the first process never ran"
        first_lines = Lines(first)
        second = doa_process("run", str(stale), "--nodes", "calibrate", "-q", env=env)
        lines = Lines(second)
        assert wait_until(lambda: lines.first(r"^warning: node 'calibrate'"), 90, 0.3), \
            lines.text()
        hit = lines.first(r"^warning: node 'calibrate'")
        assert hit is not None
        warning = hit[1]
        pid = first.pid
        assert f":{pid} (step {good}:" in warning, warning
        assert f"than here (step {stale}:" in warning, warning
        assert "group walkcode.calibrate" in warning, warning
        # not refused: the stale copy runs (and is listed as running) next to the first
        assert wait_until(lambda: len(_running(collect(broker))) == 2, 90, 0.5), lines.text()
        assert second.poll() is None
        assert not first_lines.first("^warning: node"), "the first process saw no other code"

        catalog = collect(broker)
        codes = {p["pid"]: p["code"] for p in _running(catalog)}
        assert set(codes) == {first.pid, second.pid} and len(set(codes.values())) == 2, codes
        said = [w for w in catalog["warnings"] if "different step code" in w]
        assert len(said) == 1, catalog["warnings"]
        for p, path in ((first, good), (second, stale)):
            assert re.search(rf"code {codes[p.pid]}, step {re.escape(str(path))}:\d+: "
                             rf"[^;]*:{p.pid}\b", said[0]), said[0]

        shown = doa_command("catalog", "--broker", broker, env=doa_env())
        assert shown.returncode == 0, shown.stderr.decode()
        text = " ".join(shown.stdout.decode().split())
        assert "node 'calibrate' of topology 'walkcode': its live processes run different " \
               "step code" in text, text
        as_json = doa_command("catalog", "--broker", broker, "--json", env=doa_env())
        assert as_json.returncode == 0, as_json.stderr.decode()
        assert said[0].split(" (")[0] in " ".join(json.loads(as_json.stdout)["warnings"])
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                kill9(p)


def test_the_same_step_code_in_another_folder_is_no_warning(broker: str,
                                                            tmp_path: Path) -> None:
    one = _write(tmp_path / "one", GOOD)
    two = _write(tmp_path / "two", GOOD)
    env = {"DOA_BROKER": broker, "DOA_HEARTBEAT_S": "1", "DOA_SHUTDOWN_GRACE_S": "5"}
    first = doa_process("run", str(one), "--nodes", "calibrate", "-q", env=env)
    second = None
    try:
        assert wait_until(lambda: len(_running(collect(broker))) == 1, 90, 0.5)
        second = doa_process("run", str(two), "--nodes", "calibrate", "-q", env=env)
        lines = Lines(second)
        assert wait_until(lambda: len(_running(collect(broker))) == 2, 90, 0.5), lines.text()
        assert not lines.first("^warning: node"), lines.text()
        assert not [w for w in collect(broker)["warnings"] if "step code" in w]
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                kill9(p)
