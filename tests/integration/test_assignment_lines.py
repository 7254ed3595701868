"""Finding F5: scaling out, nobody could see which process holds which partitions, nor when a
rebalance happened (only ``/metrics`` said how many).

Now each ``doa run`` says, one status line on stderr, when its node's group assigns it other
partitions (``count: partitions of events: 0, 1 (was 0, 1, 2, 3)``), and each process's
description on ``_doa_topologies`` is written again with its assignment, which ``doa catalog``
shows per process (text and ``--json``).

Two real processes of one node on a 4-partition stream.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from doa.catalog import collect
from tests.integration.conftest import COUNTING, doa_process, kill9
from tests.integration.helpers import Lines, doa_command, doa_env, wait_until

pytestmark = pytest.mark.broker

LINE = r"^\[ *[0-9.]+s\] count: partitions of events: (?P<now>[0-9, ]+|none)" \
       r"(?: \(was (?P<was>[0-9, ]+|none)\))?$"


def _said(lines: Lines) -> list[tuple[str, str | None]]:
    """The partitions lines said so far: (now, was)."""
    return [(m["now"], m["was"]) for _, line in list(lines.items)
            if (m := re.match(LINE, line))]


def _held(catalog: dict[str, Any]) -> dict[int, list[int]]:
    """Per pid of a live process of ``count``, the partitions of ``events`` it holds."""
    node = next((n for n in catalog["nodes"] if n["name"] == "count"), None)
    return {p["pid"]: p["partitions"]["events"] for p in (node or {}).get("processes", ())
            if p["alive"] and p.get("partitions") is not None}


def _split(catalog: dict[str, Any], pids: set[int]) -> bool:
    held = _held(catalog)
    if set(held) != pids or not all(held.values()):
        return False
    every = [p for parts in held.values() for p in parts]
    return sorted(every) == [0, 1, 2, 3]  # all four, none twice


def test_each_process_says_its_partitions_and_the_catalog_shows_them(broker: str) -> None:
    env = {"DOA_BROKER": broker, "DOA_HEARTBEAT_S": "1", "DOA_SHUTDOWN_GRACE_S": "5"}
    first = doa_process("run", COUNTING, "--nodes", "count", env=env)
    second = None
    try:
        one = Lines(first)
        assert wait_until(lambda: ("0, 1, 2, 3", None) in _said(one), 90, 0.3), one.text()
        assert wait_until(lambda: _held(collect(broker)) == {first.pid: [0, 1, 2, 3]}, 60,
                          0.5), _held(collect(broker))
        second = doa_process("run", COUNTING, "--nodes", "count", env=env)
        two = Lines(second)
        pids = {first.pid, second.pid}
        assert wait_until(lambda: _split(collect(broker), pids), 120, 0.5), \
            (_held(collect(broker)), one.text(), two.text())
        held = _held(collect(broker))
        # each said what it holds now; the first, what it held before
        assert wait_until(lambda: _said(one)[-1][0] == ", ".join(map(str, held[first.pid]))
                          and _said(two)[-1][0] == ", ".join(map(str, held[second.pid])),
                          30, 0.3), (held, _said(one), _said(two))
        assert _said(one)[-1][1] is not None, _said(one)
        assert "count: partitions of events: " in two.text()

        shown = doa_command("catalog", "--broker", broker, env=doa_env())
        assert shown.returncode == 0, shown.stderr.decode()
        text = " ".join(shown.stdout.decode().split())
        for pid, parts in _held(collect(broker)).items():
            assert re.search(rf":{pid} kafka running \d+ s ago, partitions of events: "
                             + re.escape(", ".join(map(str, parts))), text), text
        as_json = json.loads(doa_command("catalog", "--broker", broker, "--json",
                                         env=doa_env()).stdout)
        assert _split(as_json, pids), _held(as_json)

        # the second one stops: the first takes every partition back, and says so
        kill9(second)
        assert wait_until(lambda: _said(one)[-1][0] == "0, 1, 2, 3", 120, 0.5), one.text()
        assert wait_until(lambda: _held(collect(broker)) == {first.pid: [0, 1, 2, 3]}, 60,
                          0.5), _held(collect(broker))
    finally:
        for p in (first, second):
            if p is not None and p.poll() is None:
                kill9(p)
