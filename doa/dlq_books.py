"""What ``doa dlq --replay`` has replayed: its bookkeeping, in consumer-group offsets.

A replay of every node's letters commits, per partition of the dead-letter stream, the offset
up to which it has gone, in the group ``TOPOLOGY.dlq-replay`` (as every version of doa did).
A replay of one node's letters (``--node NAME``) commits in a group of that node's own,
``TOPOLOGY.dlq-replay.NAME``, up to where it has gone through that node's letters. A letter
is replayed when it lies below either mark: the one of every node, or its own node's.

So runs of one node and of all mix without a letter replayed twice or skipped: a run of all
starts at its own mark and passes over the letters below their node's mark; a run of one node
starts at the higher of the two marks. Bookkeeping written before (the group of all only)
reads as before: no node has a mark of its own.

Examples
--------
>>> books = Books(every={0: 4}, nodes={"score": {0: 9, 1: 3}})
>>> [books.replayed(0, offset, "score") for offset in (3, 5, 9)]
[True, True, False]
>>> [books.replayed(0, offset, "parse") for offset in (3, 5)]
[True, False]
>>> books.start(0, None), books.start(0, "score"), books.start(1, "parse")
(4, 9, 0)
>>> replay_group("sensors"), replay_group("sensors", "score")
('sensors.dlq-replay', 'sensors.dlq-replay.score')
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from doa.cluster.security import kafka_python_options
from doa.errors import DoaError, first_line

if TYPE_CHECKING:
    from doa.topology.topology import Topology

__all__ = ["Books", "read_books", "replay_group"]


def replay_group(topology: str | Topology, node: str | None = None) -> str:
    """The consumer group whose offsets say how far a replay went: of every node's letters
    (``node`` None), or of ``node``'s; ``topology`` is one, or its name."""
    name = topology if isinstance(topology, str) else topology.name
    return f"{name}.dlq-replay" + ("" if node is None else f".{node}")


@dataclass
class Books:
    """The marks of a dead-letter stream, per partition: ``every`` (replays of all nodes) and
    ``nodes`` (replays of one node, by node). A partition without a mark starts at 0."""

    every: dict[int, int] = field(default_factory=dict)
    nodes: dict[str, dict[int, int]] = field(default_factory=dict)

    def replayed(self, partition: int, offset: int, node: str) -> bool:
        """Whether the letter of ``node`` at ``partition@offset`` was replayed."""
        return offset < max(self.every.get(partition, 0),
                            self.nodes.get(node, {}).get(partition, 0))

    def start(self, partition: int, node: str | None) -> int:
        """Where a replay of ``node``'s letters (None: all) starts reading ``partition``: no
        letter before it is still to be replayed."""
        mark = self.every.get(partition, 0)
        if node is None:
            return mark
        return max(mark, self.nodes.get(node, {}).get(partition, 0))


def read_books(address: str, topic: str, topology: str, nodes: Iterable[str],
               timeout_s: float = 30.0) -> Books:
    """The marks of dead-letter stream ``topic`` of ``topology``: of all, and of each of
    ``nodes`` (one admin client, one offset request per group; a coordinator not there yet,
    as on an Apache Kafka that never had a group, is waited for up to ``timeout_s``)."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=address, **kafka_python_options(address),
                             client_id="doa-dlq")
    try:
        def marks(group: str) -> dict[int, int]:
            found = _offsets(admin, group, timeout_s)
            return {tp.partition: int(o.offset) for tp, o in found.items()
                    if tp.topic == topic and o is not None and o.offset >= 0}

        books = Books(every=marks(replay_group(topology)))
        for node in nodes:
            own = marks(replay_group(topology, node))
            if own:
                books.nodes[node] = own
    finally:
        admin.close()
    return books


def _offsets(admin: Any, group: str, timeout_s: float) -> dict[Any, Any]:
    """The committed offsets of ``group``, asked again while the broker has no coordinator
    for it yet (Kafka creates its offsets topic on the first ask)."""
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found: dict[Any, Any] = admin.list_group_offsets(group).get(group, {})
            return found
        except KafkaError as exc:
            if not getattr(exc, "retriable", False) or time.monotonic() > deadline:
                raise DoaError(f"dead-letter replay group {group!r}: its offsets could not be "
                               f"read ({first_line(exc)})") from exc
            time.sleep(0.2)
