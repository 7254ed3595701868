"""Test topology: one node merging two streams by record timestamp; each output counts the
records the node had taken when its input came, so it shows the order the node took them in.
``MERGING_PARTITIONS`` (default 1): the partitions of each stream.
"""

from __future__ import annotations

import os
from typing import Any

from doa import Topology

PARTITIONS = int(os.environ.get("MERGING_PARTITIONS", "1"))
topology = Topology("merging", schemas="../schemas")
first = topology.stream("first", schema="testing.Event", key="key", partitions=PARTITIONS)
second = topology.stream("second", schema="testing.Event", key="key", partitions=PARTITIONS)
seen = topology.stream("seen", schema="testing.Count", key="key", partitions=PARTITIONS)


@topology.node(reads=[first, second], writes=seen, state=int)
def order(state: int, batch: list[Any]) -> tuple[Any, list[Any]]:
    out = []
    for e in batch:
        state += 1
        out.append((e, {"key": e["key"], "n": e["n"], "count": state, "total": 0}))
    return state, out
