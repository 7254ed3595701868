"""``/api/events`` of ``doa ui`` lists model events newest first in the order of the log.

A model node stamps ``promoted``/``rejected`` with the event time of its input, ``doa model
publish`` stamps ``created``/``candidate`` with the wall clock; sorted by timestamp, the
events of one partition came out as offsets 7,6,3,2,1,0,9,8,5,4 and the newest promotion
showed as the oldest event. Within a partition the page now shows the newest offset first;
partitions are merged by timestamp without reordering either one.
"""

from __future__ import annotations

import json
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process, kill9
from tests.integration.test_ui import _url_of

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the order is the page's, not the broker's")]

TOPOLOGY = '''
from doa import Topology

topology = Topology("ordering")
topology.stream("models", schema="doa.ModelEvent", partitions=2)
'''
WALL = int(time.time() * 1000)
EVENT = WALL - 3 * 86_400_000  # the stream's event time: three days behind the wall clock
# One partition's events in the order they were appended: a version published (wall clock),
# then promoted by the node (event time), and so on.
ACTIONS = [("created", WALL), ("candidate", WALL + 1), ("promoted", EVENT + 10),
           ("rejected", EVENT + 11), ("created", WALL + 2), ("candidate", WALL + 3),
           ("promoted", EVENT + 20), ("rejected", EVENT + 21), ("candidate", WALL + 4),
           ("promoted", EVENT + 30)]


def _event(version: int, action: str, partition: int) -> dict[str, Any]:
    return {"model": "m", "action": action, "version": version, "from_version": version - 1,
            "reason": "", "labels": 100 * version, "metric": None, "partition": partition,
            "timestamp": 0, "blob": None}


def _events(url: str, want: int, timeout: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url.rstrip('/')}/api/events?n=50", timeout=30) as r:
            found = json.loads(r.read())["events"]
        if len(found) >= want:
            return found
        time.sleep(0.5)
    raise AssertionError(f"/api/events gave {len(found)} events, not {want}")


def test_events_newest_first_by_offset_within_a_partition(broker: str, tmp_path: Path) -> None:
    path = tmp_path / "ordering_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    with Publisher("models", broker=broker, topology=t) as pub:
        for version, (action, ts) in enumerate(ACTIONS, start=1):
            pub.send(_event(version, action, 0), timestamp_ms=ts, partition=0)
        pub.send(_event(1, "created", 1), timestamp_ms=WALL + 50, partition=1)
        pub.send(_event(1, "promoted", 1), timestamp_ms=EVENT + 50, partition=1)
    ui = doa_process("ui", "--broker", broker, "--port", "0", str(path))
    try:
        found = _events(_url_of(ui, 60), len(ACTIONS) + 2)
    finally:
        kill9(ui)
    assert {e["kind"] for e in found} == {"model"}
    assert [e["offset"] for e in found if e["partition"] == 0] == list(range(9, -1, -1))
    assert [e["offset"] for e in found if e["partition"] == 1] == [1, 0]
    newest = next(e for e in found if e["partition"] == 0)
    assert (newest["value"]["action"], newest["value"]["version"]) == ("promoted", 10)
