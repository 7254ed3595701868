"""Where a record that failed went: its dead letters, and their replays (``doa dlq --replay``).

A node that cannot process a record writes a dead letter whose lineage header names the
record (its id and coordinates). A letter is stamped when it was written, not with its
record's time, so letters are not searched in a time window as other descendants are: the
dead-letter stream is read once, headers only, and indexed by parent id
(:meth:`doa.lineage.log.Log.by_parent`; it stays short while someone reads it); a letter is
fetched when it is shown.

A replayed record goes back to its original's stream and partition, after the original, with
the original's timestamp and the id :func:`doa.dlq.replay_id` of its letter's coordinates.
Whether a letter was replayed is what the consumer group ``TOPOLOGY.dlq-replay`` committed.
A replay that failed again is found by its own letter (which says where it was read: one
fetch); one that did not is searched from the original's offset on, headers only, at most
:data:`SCAN` records.

Examples
--------
>>> summary({"error_type": "ValueError", "message": "poison event n=2\\nmore"})
'ValueError: poison event n=2'
"""

from __future__ import annotations

from typing import Any

from doa.dlq import replay_id
from doa.lineage.log import Log, Record

__all__ = ["SCAN", "letters", "replay", "summary"]

SCAN = 200_000  # records read after an original, headers only, for its replay


def letters(log: Log, rec: Record) -> list[Record]:
    """The dead letters whose header lists ``rec`` as their parent (one of each id)."""
    topology = log.topology
    if topology is None or not any(rec.event.stream in n.reads for n in topology.nodes.values()):
        return []  # no node reads the record: none can have dead-lettered it
    dlq = topology.dead_letters.name
    found: dict[bytes, Record] = {}
    for partition, offset in log.by_parent(dlq).get(rec.event.id, []):
        letter = log.get(dlq, partition, offset)
        if letter is not None:
            found.setdefault(letter.event.id, letter)
    return list(found.values())


def summary(letter: dict[str, Any]) -> str:
    """A letter's error kind and the first line of its message (at most 120 characters)."""
    text = f"{letter.get('error_type')}: {str(letter.get('message')).splitlines()[0]}"
    return text if len(text) <= 120 else text[:119] + "…"


def replay(log: Log, letter: Record) -> tuple[Record | None, str]:
    """The record re-published from ``letter``, or None and why (never replayed, or not
    found within :data:`SCAN` records after the original)."""
    topology = log.topology
    assert topology is not None
    e = letter.event
    group = f"{topology.name}.dlq-replay"
    if log.committed(group, e.stream).get(e.partition, 0) <= e.offset:
        return None, "none yet: doa dlq --replay re-publishes it"
    wanted = replay_id(e.stream, e.partition, e.offset)
    for p, o in log.by_parent(e.stream).get(wanted, []):
        again = log.get(e.stream, p, o)  # the replay failed too: its letter
        if again is not None and "stream" in again.event:
            found = log.get(again.event["stream"], again.event["partition"],
                            again.event["offset"])
            if found is not None and found.event.id == wanted:
                return found, ""
    if "stream" not in e:  # a letter that cannot be decoded
        return None, f"replayed by {group}; the letter cannot be decoded ({letter.error})"
    stream, partition, offset = str(e["stream"]), int(e["partition"]), int(e["offset"])
    if partition not in log.partitions(stream):
        return None, f"replayed by {group}, to a stream or partition that is gone"
    stop = min(offset + 1 + SCAN, log.end(stream, partition))
    for at, lin in log.headers(stream, partition, offset + 1, stop):
        if lin is not None and lin.id == wanted:
            return log.get(stream, partition, at), ""
    return None, (f"replayed by {group}, but not found in the {SCAN} records after "
                  f"{stream}:{partition}:{offset}")
