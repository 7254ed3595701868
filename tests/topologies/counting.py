"""Test topology: count events per key; every event yields one output.

``poison`` payloads make the step raise (to test per-record dead-lettering). The state carries
``DOA_TEST_PAD`` bytes of padding so snapshots can be made to span several chunks.
"""

from __future__ import annotations

import os
from typing import Any

from doa import Topology

topology = Topology("counting", schemas="../schemas")
events = topology.stream("events", schema="testing.Event", key="key", partitions=4)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=4)


def initial() -> dict[str, Any]:
    return {"keys": {}, "pad": b"\0" * int(os.environ.get("DOA_TEST_PAD", "0"))}


@topology.node(reads=events, writes=counts, state=initial)
def count(state: dict[str, Any], batch: list[Any]) -> tuple[Any, list[Any]]:
    out = []
    for e in batch:
        if e["payload"] == "poison":
            raise ValueError(f"poison event n={e['n']}")
        c, t = state["keys"].get(e["key"], (0, 0))
        c, t = c + 1, t + e["n"]
        state["keys"][e["key"]] = (c, t)
        out.append((e, {"key": e["key"], "n": e["n"], "count": c, "total": t}))
    return state, out
