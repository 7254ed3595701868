"""Where a merging node's batches ended, carried on its outputs, so that a restarted node
takes its inputs in the order the run before it took them.

A node reading several streams merges them by record timestamp (:mod:`doa.runtime.merge`),
and after ``max_idle_ms`` it takes one input's records while another has nothing. A record
that then comes with an earlier timestamp (its writer stalled) is taken after records it
precedes in time. A replay reads the logs whole and would put it before them: a node restarted
from a snapshot older than that would write, for the same inputs, other outputs than those
already in its streams. So every output of a batch carries, in the ``doa-cut`` header, the
input positions (next offset per input stream, in the node's order of inputs) at which each
batch since the node's previous outputs ended (:class:`CutLog`). A restart reads the headers
of its outputs written after its snapshot (:func:`plan`) and its merge takes the records up to
each of those positions before any later one (:class:`doa.runtime.merge.TimestampMerge`): the
first run's order exactly, then the timestamp order again.

A batch's order within itself is the timestamp merge of what it took, so its end positions
say all of it. Batches without outputs pass theirs on to the next outputs (or to the next
snapshot, which covers them); a snapshot records where the node's outputs ended, so a restart
reads only what came after.

Examples
--------
>>> from doa.runtime.runner import OutRecord
>>> log = CutLog("order", ["first", "second"], writes=["seen"])
>>> log.tag(0, {"first": 3, "second": 0}, [])  # a batch without outputs
[]
>>> out = OutRecord("seen", 0, b"k", b"v", 5, (), b"id")
>>> [tagged] = log.tag(0, {"first": 3, "second": 1}, [out])
>>> tagged.headers[-1][0], unpack(tagged.headers[-1][1])
('doa-cut', ('order', 0, [(3, 0), (3, 1)]))
>>> plan([tagged.headers[-1][1]], "order", 0, covered=(2, 0))
[(3, 0), (3, 1)]
>>> plan([tagged.headers[-1][1]], "order", 0, covered=(3, 0))  # the snapshot covers one
[(3, 1)]
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence

from doa.runtime.runner import OutRecord

HEADER = "doa-cut"
MAX_PENDING = 64  # batches without outputs in a row before the engine takes a snapshot
_HEAD = struct.Struct("<IHH")  # input partition, cuts, inputs per cut

Cut = tuple[int, ...]


def pack(node: str, partition: int, cuts: Sequence[Cut]) -> bytes:
    """The header value: node name, NUL, input partition, then each cut's positions."""
    width = len(cuts[0]) if cuts else 0
    flat = [o for cut in cuts for o in cut]
    return (node.encode() + b"\0" + _HEAD.pack(partition, len(cuts), width)
            + struct.pack(f"<{len(flat)}q", *flat))


def unpack(value: bytes) -> tuple[str, int, list[Cut]]:
    """``(node, input partition, cuts)`` of a header value (see :func:`pack`)."""
    name, _, rest = value.partition(b"\0")
    partition, count, width = _HEAD.unpack_from(rest)
    flat = struct.unpack_from(f"<{count * width}q", rest, _HEAD.size)
    return name.decode(), partition, [tuple(flat[i * width:(i + 1) * width])
                                      for i in range(count)]


def plan(values: Iterable[bytes], node: str, partition: int, covered: Cut) -> list[Cut]:
    """The cuts of ``node``'s input ``partition`` among header ``values`` that lie past the
    positions its snapshot ``covered``, in the order they were made (positions only grow)."""
    cuts: set[Cut] = set()
    for value in values:
        name, p, found = unpack(value)
        if name == node and p == partition:
            cuts.update(found)
    return sorted((c for c in cuts if any(a > b for a, b in zip(c, covered, strict=True))),
                  key=sum)


class CutLog:
    """The cuts a running node has made since its last outputs, per input partition (where
    its outputs end, for its snapshots: :class:`doa.runtime.written.Written`)."""

    def __init__(self, node: str, streams: Sequence[str], writes: Iterable[str]) -> None:
        self.node = node
        self.streams = list(streams)
        self.writes = frozenset(writes)  # what a restart reads (not the dead-letter stream)
        self.pending: dict[int, list[Cut]] = {}

    def tag(self, partition: int, positions: Mapping[str, int],
            outputs: list[OutRecord]) -> list[OutRecord]:
        """Note a batch of ``partition`` that ended at ``positions``; its ``outputs``, those to
        the node's streams with the header saying where it and the batches before it that
        wrote none ended (dead letters alone do not carry it: a restart does not read them)."""
        pending = self.pending.setdefault(partition, [])
        pending.append(tuple(positions.get(s, 0) for s in self.streams))
        writes = self.writes
        if not any(o.stream in writes for o in outputs):
            return outputs
        header = (HEADER, pack(self.node, partition, pending))
        pending.clear()
        return [o._replace(headers=(*o.headers, header)) if o.stream in writes else o
                for o in outputs]

    def backlog(self, partition: int) -> int:
        """Cuts of ``partition`` that no output carries yet."""
        return len(self.pending.get(partition, ()))

    def covered(self, partition: int) -> None:
        """A snapshot of ``partition`` covers its cuts so far: a restart starts past them."""
        self.pending.pop(partition, None)
