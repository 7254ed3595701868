"""What every ``doa model`` command shares: the node named on the command line, the broker
reached before the topology's imports, a stream read from its beginning, records sent to every
partition, and who sent them when.
"""

from __future__ import annotations

import getpass
import socket
import time
from typing import Any

from doa.cli.options import need_broker
from doa.errors import DoaError

__all__ = ["node_spec", "reach", "read_all", "send_all", "stamp"]


def node_spec(topology: str, node: str, kinds: tuple[str, ...] = ("learner", "model")
              ) -> tuple[Any, Any]:
    """The topology at path ``topology`` and the spec of its node ``node`` (a learner or a
    model node with a versions stream), else a one-line error naming the nodes it has."""
    from doa.topology.loader import load_topology

    t = load_topology(topology)
    n = t.nodes.get(node)
    if n is None or n.kind not in kinds:
        names = [x.name for x in t.nodes.values() if x.kind in kinds]
        raise DoaError(f"topology {t.name!r} has no {' or '.join(kinds)} node {node!r} "
                       f"({', '.join(names) or 'none'})")
    if n.kind == "model" and getattr(n.spec, "versions", None) is None:
        raise DoaError(f"model node {node!r} declares no versions stream (versions=None)")
    return t, n.spec


def reach(broker: str | None) -> str:
    """The broker's address, checked reachable (a one-line error within seconds if not)."""
    from doa.cluster.reach import check_reachable

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)  # before the topology's imports
    return address


def read_all(address: str, t: Any, stream: str) -> list[Any]:
    """Every record of ``stream``, from its beginning."""
    from doa.client import Subscriber

    with Subscriber([stream], broker=address, topology=t, from_beginning=True,
                    idle_timeout_s=2) as sub:
        return list(sub)


def send_all(address: str, t: Any, stream: str,
             records: list[dict[str, Any]] | dict[int, list[dict[str, Any]]],
             timestamp_ms: int | None) -> None:
    """Send ``records``, in order, to every partition of ``stream`` (a dict: to each
    partition its own)."""
    from doa.client import Publisher

    with Publisher(stream, broker=address, topology=t, name="doa-model") as pub:
        for p in range(t.streams[stream].partitions):
            for record in records.get(p, []) if isinstance(records, dict) else records:
                pub.send(record, partition=p, timestamp_ms=timestamp_ms)


def stamp() -> dict[str, Any]:
    """Who sends a versions record (user@host) and when (wall-clock ms)."""
    return {"publisher": f"{getpass.getuser()}@{socket.gethostname()}",
            "published": time.time_ns() // 1_000_000}

