"""Node state snapshots: state plus the input offsets it covers, as records of a state topic.

The snapshot for input partition ``p`` goes to partition ``p`` of the node's state topic, so
the latest one is at the end of that partition: no compaction is needed to find it. A snapshot
bigger than ``chunk_size`` is split into chunks (Kafka's default record limit is 1 MB); the
last chunk closes it. A crash in the middle of a snapshot leaves chunks without their last one,
which :func:`latest_snapshot` skips, returning the previous complete snapshot instead.

Keys alternate between two slots (``p/0/i`` and ``p/1/i``), so even a broker that compacts the
state topic keeps the previous complete snapshot while a new one is being written.

Examples
--------
>>> chunks = snapshot_records(partition=2, seq=5, state={"n": 3},
...                           offsets={"readings": 100}, chunk_size=8)
>>> len(chunks) > 1
True
>>> snap = latest_snapshot([value for _key, value in chunks])
>>> snap.state, snap.offsets, snap.seq
({'n': 3}, {'readings': 100}, 5)
>>> latest_snapshot([value for _key, value in chunks[:-1]]) is None  # torn: no last chunk
True
"""

from __future__ import annotations

import pickle
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MAGIC = b"DOAS"
_HEAD = struct.Struct("<4sBQII")  # magic, version, seq, index, count
_VERSION = 1
CHUNK_SIZE = 512 * 1024


@dataclass(frozen=True)
class Snapshot:
    """A node's state for one input partition and the next offset to read per input stream."""

    seq: int
    state: Any
    offsets: dict[str, int]
    created_ms: int


def snapshot_records(partition: int, seq: int, state: Any, offsets: dict[str, int],
                     chunk_size: int = CHUNK_SIZE) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` records of one snapshot, in the order to produce them."""
    payload = pickle.dumps({"state": state, "offsets": dict(offsets),
                            "created_ms": time.time_ns() // 1_000_000}, protocol=5)
    pieces = [payload[i: i + chunk_size] for i in range(0, len(payload), chunk_size)] or [b""]
    count = len(pieces)
    return [(f"{partition}/{seq % 2}/{i}".encode(),
             _HEAD.pack(MAGIC, _VERSION, seq, i, count) + piece)
            for i, piece in enumerate(pieces)]


def _head(value: bytes) -> tuple[int, int, int] | None:
    if len(value) < _HEAD.size or value[:4] != MAGIC:
        return None
    _magic, version, seq, index, count = _HEAD.unpack_from(value)
    return (seq, index, count) if version == _VERSION else None


def latest_snapshot(values: Sequence[bytes]) -> Snapshot | None:
    """The newest complete snapshot among the values of a state partition's tail.

    ``values`` are in offset order; returns None if the tail holds no complete snapshot
    (the caller then reads a longer tail, or starts from an empty state).
    """
    i = len(values) - 1
    while i >= 0:
        head = _head(values[i])
        if head is None or head[1] != head[2] - 1:
            i -= 1
            continue
        seq, _index, count = head
        start = i - count + 1
        parts = values[start: i + 1] if start >= 0 else []
        heads = [_head(v) for v in parts]
        if len(parts) == count and all(h is not None and h[0] == seq and h[1] == k
                                       for k, h in enumerate(heads)):
            blob = b"".join(v[_HEAD.size:] for v in parts)
            data = pickle.loads(blob)
            return Snapshot(seq, data["state"], data["offsets"], data["created_ms"])
        i -= 1
    return None
