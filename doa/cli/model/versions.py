"""What every ``doa model`` command shares: the node named on the command line, the broker
reached before the topology's imports, a stream read from its beginning, records sent to every
partition, and who sent them when.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Mapping
from typing import Any

from doa.cli.options import need_broker
from doa.errors import DoaError

__all__ = ["at_the_end", "node_spec", "reach", "read_all", "send_all", "stamp"]


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
    """Every record of ``stream`` from its beginning to the end it has now, partition by
    partition in offset order (records ``doa dlq --replay`` re-published are left out).

    Reading up to the ends taken first, not until the stream has been idle for a while: each
    ``doa model`` command read one to three streams and waited 2 s of silence after each
    (5-7 s a command in a walk)."""
    from doa.collect.read import Reader, codecs_for
    from doa.events import replay_node
    from doa.subscriber import event_at

    codec = codecs_for(t, [stream], address)[stream]
    found: list[Any] = []
    with Reader(address) as reader:
        for p, (begin, end) in sorted(reader.ends(stream).items()):
            for batch in reader.batches(stream, p, begin, end):
                for m in batch:
                    if not (m.headers and replay_node(m.headers) is not None):
                        found.append(event_at(codec, m))
    return found


def at_the_end(address: str, t: Any, spec: Any, stream: str) -> dict[int, int]:
    """The timestamp of a record sent to each partition of ``stream`` (a versions or control
    stream) so that it takes effect where the log ends now: one past the newest record of the
    streams the node scores in that partition (the wall clock where they have none).

    A node merges its inputs by timestamp (:mod:`doa.runtime.merge`). A version stamped with
    the wall clock came, in a rebuild from the log, after every record stamped with an
    earlier event time (a backfill, a producer lagging): the live run had switched where the
    version arrived, the rebuild later. Stamped at the end of the scored records, the
    version comes after those that were there when it was sent, in both.
    """
    from doa.collect.read import Reader

    scored = list(spec.reads) if spec.kind == "model" else [spec.features]
    now = time.time_ns() // 1_000_000
    newest: dict[int, int] = {}
    with Reader(address) as reader:
        for s in scored:
            for p, (begin, end) in reader.ends(s).items():
                for batch in reader.batches(s, p, max(begin, end - 1), end):
                    newest[p] = max([newest.get(p, 0), *(m.timestamp for m in batch)])
    return {p: newest[p] + 1 if p in newest else now
            for p in range(t.streams[stream].partitions)}


def send_all(address: str, t: Any, stream: str,
             records: list[dict[str, Any]] | dict[int, list[dict[str, Any]]],
             timestamp_ms: int | Mapping[int, int] | None) -> None:
    """Send ``records``, in order, to every partition of ``stream`` (a dict: to each
    partition its own), stamped ``timestamp_ms`` (a mapping: each partition's own; None:
    the wall clock)."""
    from doa.client import Publisher

    with Publisher(stream, broker=address, topology=t, name="doa-model") as pub:
        for p in range(t.streams[stream].partitions):
            for record in records.get(p, []) if isinstance(records, dict) else records:
                pub.send(record, partition=p, timestamp_ms=timestamp_ms.get(p)
                         if isinstance(timestamp_ms, Mapping) else timestamp_ms)


def stamp() -> dict[str, Any]:
    """Who sends a versions record (user@host) and when (wall-clock ms)."""
    return {"publisher": f"{getpass.getuser()}@{socket.gethostname()}",
            "published": time.time_ns() // 1_000_000}

