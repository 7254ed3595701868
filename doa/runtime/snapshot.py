"""Node state snapshots: state plus the input offsets it covers, as records of a state topic.

The snapshot for input partition ``p`` goes to partition ``p`` of the node's state topic, so
the latest one is at the end of that partition: no compaction is needed to find it. A snapshot
bigger than ``chunk_size`` is split into chunks (Kafka's default record limit is 1 MB); the
last chunk closes it. A crash in the middle of a snapshot leaves chunks without their last one,
which :func:`latest_snapshot` skips, returning the previous complete snapshot instead.

Keys alternate between two slots (``p/0/i`` and ``p/1/i``), so even a broker that compacts the
state topic keeps the previous complete snapshot while a new one is being written.

Each chunk starts with a header: magic ``DOAS``, format, sequence number, chunk index, chunk
count. Format 1 is an unsigned pickle (what doa writes without a signing key, and all it wrote
before signing existed); format 2 puts the HMAC-SHA256 of the pickle (bound to the state
topic, partition and sequence number, see :mod:`doa.cluster.signing`) in front of it. With a key, a
snapshot that is unsigned or whose tag does not match is refused *before* it is unpickled and
the search goes on to the previous snapshot: the node restores from the newest snapshot it
can verify, or from the beginning of its inputs (its state being a function of its input
log, that rebuilds the same state) — never from the refused bytes. Without a key both formats
load.

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

Signed, then read back with the right key and with another one:

>>> key = b"0123456789abcdef"
>>> signed = [v for _k, v in snapshot_records(2, 6, {"n": 4}, {}, key=key, topic="t.n.state")]
>>> latest_snapshot(signed, key, topic="t.n.state", partition=2).state
{'n': 4}
>>> snap, refused = scan(signed, b"fedcba9876543210", topic="t.n.state", partition=2)
>>> snap is None, refused[0].message()
(True, "state topic 't.n.state' partition 2 offset 0: snapshot 6 is mis-signed ...")
"""

from __future__ import annotations

import logging
import pickle
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from doa.cluster.signing import ENV_KEY, TAG_SIZE, sign, verify
from doa.errors import DoaError, first_line
from doa.pickles import loads

log = logging.getLogger(__name__)

MAGIC = b"DOAS"
_HEAD = struct.Struct("<4sBQII")  # magic, format, seq, index, count
UNSIGNED, SIGNED = 1, 2  # formats
CHUNK_SIZE = 512 * 1024
_WHY = {"unsigned": f"it carries no signature and {ENV_KEY} is set",
        "mis-signed": f"its signature does not match {ENV_KEY} (another key, or altered)"}


class Unrestorable(DoaError):
    """A complete snapshot (signed, if a key is set) that does not unpickle."""


@dataclass(frozen=True)
class Snapshot:
    """A node's state for one input partition and the next offset to read per input stream."""

    seq: int
    state: Any
    offsets: dict[str, int]
    created_ms: int
    at: int = -1  # the offset of its last record in the state topic
    # where the node's outputs ended when it was taken (a merging node's: doa.runtime.cuts)
    outputs: dict[tuple[str, int], int] = field(default_factory=dict)


@dataclass(frozen=True)
class Refused:
    """A complete snapshot that the signing key does not vouch for; it was not unpickled."""

    topic: str
    partition: int
    first: int  # offsets of its first and last records
    last: int
    seq: int
    reason: str  # "unsigned" or "mis-signed"

    def message(self, outcome: str = "") -> str:
        """One line naming the topic, partition and offset(s), and what the node does."""
        where = f"offset {self.last}" if self.first == self.last else \
            f"offsets {self.first}-{self.last}"
        text = (f"state topic {self.topic!r} partition {self.partition} {where}: snapshot "
                f"{self.seq} is {self.reason} ({_WHY[self.reason]}); refused, not unpickled")
        return f"{text}; {outcome}" if outcome else text


def snapshot_records(partition: int, seq: int, state: Any, offsets: dict[str, int],
                     chunk_size: int = CHUNK_SIZE, *, key: bytes | None = None,
                     topic: str = "", outputs: dict[tuple[str, int], int] | None = None
                     ) -> list[tuple[bytes, bytes]]:
    """The ``(key, value)`` records of one snapshot, in the order to produce them.

    With ``key``, the snapshot is signed for state topic ``topic`` (format 2). ``outputs``:
    where the node's outputs end, per output partition (a merging node's).
    """
    data = {"state": state, "offsets": dict(offsets), "created_ms": time.time_ns() // 1_000_000}
    if outputs:
        data["outputs"] = dict(outputs)
    payload = pickle.dumps(data, protocol=5)
    form = UNSIGNED
    if key is not None:
        payload = sign(key, payload, "snapshot", topic, partition, seq) + payload
        form = SIGNED
    pieces = [payload[i: i + chunk_size] for i in range(0, len(payload), chunk_size)] or [b""]
    count = len(pieces)
    return [(f"{partition}/{seq % 2}/{i}".encode(),
             _HEAD.pack(MAGIC, form, seq, i, count) + piece)
            for i, piece in enumerate(pieces)]


def _head(value: bytes) -> tuple[int, int, int] | None:
    if len(value) < _HEAD.size or value[:4] != MAGIC:
        return None
    _magic, form, seq, index, count = _HEAD.unpack_from(value)
    return (seq, index, count) if form in (UNSIGNED, SIGNED) else None


def _refusal(key: bytes, form: int, blob: bytes, topic: str, partition: int,
             seq: int) -> str | None:
    if form == UNSIGNED:
        return "unsigned"
    if not verify(key, blob[TAG_SIZE:], blob[:TAG_SIZE], "snapshot", topic, partition, seq):
        return "mis-signed"
    return None


def scan(values: Sequence[bytes], key: bytes | None = None, *, topic: str = "",
         partition: int = 0, offsets: Sequence[int] | None = None
         ) -> tuple[Snapshot | None, list[Refused]]:
    """The newest complete snapshot among ``values`` that ``key`` vouches for, and the newer
    complete snapshots it refused (None if there is none: the caller then reads a longer
    tail, or starts from an empty state).

    ``values`` are a state partition's tail in offset order, at ``offsets`` (default: their
    positions). Refused snapshots are never unpickled.
    """
    at = list(range(len(values))) if offsets is None else list(offsets)
    refused: list[Refused] = []
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
        forms = {v[4] for v in parts}
        if not (len(parts) == count and len(forms) == 1
                and all(h is not None and h[0] == seq and h[1] == k
                        for k, h in enumerate(heads))):
            i -= 1
            continue
        form = forms.pop()
        blob = b"".join(v[_HEAD.size:] for v in parts)
        reason = None if key is None else _refusal(key, form, blob, topic, partition, seq)
        if reason is not None:
            refused.append(Refused(topic, partition, at[start], at[i], seq, reason))
            i = start - 1
            continue
        try:
            data = loads(blob[TAG_SIZE:] if form == SIGNED else blob)
        except Exception as exc:  # its state's class changed or is gone: say which snapshot
            raise Unrestorable(
                f"state topic {topic!r} partition {partition} offset {at[i]}: snapshot {seq} "
                f"cannot be restored: {first_line(exc, kind=True)} (its state was "
                f"written by another version of the node's code: make the class it names "
                f"importable again, or, to start the node from the beginning of its inputs, "
                f"delete the state topic and run `doa deploy`)") from exc
        return Snapshot(seq, data["state"], data["offsets"], data["created_ms"], at[i],
                        data.get("outputs", {})), refused
    return None, refused


def latest_snapshot(values: Sequence[bytes], key: bytes | None = None, *, topic: str = "",
                    partition: int = 0, offsets: Sequence[int] | None = None
                    ) -> Snapshot | None:
    """:func:`scan`, logging one line (ERROR) per refused snapshot."""
    snap, refused = scan(values, key, topic=topic, partition=partition, offsets=offsets)
    for r in refused:
        log.error(r.message(restore_outcome(snap)))
    return snap


def restore_outcome(snap: Snapshot | None) -> str:
    """What a node restores from instead of a refused snapshot, for :meth:`Refused.message`.

    >>> restore_outcome(None)
    'restoring from the beginning of the inputs instead'
    """
    if snap is None:
        return "restoring from the beginning of the inputs instead"
    return f"restoring from snapshot {snap.seq} (offset {snap.at}) instead"
