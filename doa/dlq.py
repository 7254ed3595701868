"""Read a topology's dead letters, and replay them to their streams after a fix.

Replay re-publishes each letter's raw bytes, unchanged, to the stream it came from, with a
lineage header whose parent is the dead letter. A consumer group remembers what was replayed,
so running ``--replay`` twice does not publish a letter twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from doa.events import LINEAGE_HEADER, Event, Lineage, pack_lineage
from doa.security import kafka_python_options
from doa.topology import Topology


def dead_letters(address: str, topology: Topology, *, group: str | None = None,
                 idle_s: float = 2.0) -> Iterator[Event]:
    """The dead-letter envelopes of ``topology`` (from the group's position, or all)."""
    from doa.client import Subscriber

    with Subscriber([topology.dead_letters.name], broker=address, topology=topology,
                    group=group, from_beginning=True, idle_timeout_s=idle_s) as sub:
        yield from sub


def replay(address: str, topology: Topology, idle_s: float = 2.0) -> dict[str, int]:
    """Re-publish dead letters not replayed before to their streams; count per stream."""
    from kafka import KafkaProducer

    counts: dict[str, int] = {}
    producer = KafkaProducer(bootstrap_servers=address, **kafka_python_options(address), acks="all")
    try:
        group = f"{topology.name}.dlq-replay"
        for letter in dead_letters(address, topology, group=group, idle_s=idle_s):
            stream = letter["stream"]
            header = pack_lineage(Lineage(uuid.uuid4().bytes, "doa-dlq-replay",
                                          b"\0" * 8, (letter.id,)))
            producer.send(stream, value=letter["raw"], key=letter["key"],
                          headers=[(LINEAGE_HEADER, header)])
            counts[stream] = counts.get(stream, 0) + 1
        producer.flush()
    finally:
        producer.close()
    return counts
