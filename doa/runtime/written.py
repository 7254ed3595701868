"""What a node's previous run wrote after its snapshot, so that a restart does not write it
again.

A node restarted from a snapshot (after ``kill -9``, a lost broker connection, a moved
partition) processes again the input records after it, and writes again the outputs its
previous run wrote for them. Their ids are the same (an id derives from the input's place),
but the nodes reading them took the first copies already: a detector counted those errors
twice, and a learner predicted again on features a restarted kernel node wrote anew, under a
new id (the copy is at another offset). So at a restart the node reads the lineage headers
of its outputs written since its snapshot (the snapshot says where its outputs ended), and
keeps the ids of those made from inputs the snapshot does not cover (:meth:`Written.remember`);
an output of the replay with one of those ids is in the log already and is not written
again (:meth:`Written.drop`). The node's state is rebuilt from its inputs as before; only the
copies are left out.

Outputs whose header cannot be read, or that were written after the previous run's last
acknowledged batch, are not in the log: those are written, as before.

Examples
--------
>>> from doa.events import Coordinates, Lineage, pack_lineage
>>> from doa.runtime.runner import OutRecord
>>> def header(i, offset):
...     return pack_lineage(Lineage(i, "count", bytes(8), (b"p" * 16,), 0,
...                                 (Coordinates("events", 0, offset),)))
>>> w = Written()
>>> w.remember([header(b"a" * 16, 3), header(b"b" * 16, 9)], {("events", 0): 5})
1
>>> outs = [OutRecord("counts", 0, b"k", b"v", 0, (), i) for i in (b"b" * 16, b"c" * 16)]
>>> [o.id for o in w.drop(outs)], w.dropped
([b'cccccccccccccccc'], 1)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from doa.events import unpack_lineage
from doa.runtime.runner import OutRecord

__all__ = ["Written"]


class Written:
    """The ids a restart must not write again, and where the node's outputs end."""

    def __init__(self) -> None:
        self.ids: set[bytes] = set()
        self.ends: dict[tuple[str, int], int] = {}  # (stream, partition) -> next offset
        self.dropped = 0

    def delivered(self, outputs: Sequence[OutRecord], offsets: Sequence[int]) -> None:
        """The acknowledged ``outputs`` are at ``offsets`` (-1: unknown)."""
        ends = self.ends
        for out, offset in zip(outputs, offsets, strict=True):
            if offset >= 0:
                tp = (out.stream, out.partition)
                if offset >= ends.get(tp, 0):
                    ends[tp] = offset + 1

    def restored(self, ends: Mapping[tuple[str, int], int]) -> None:
        """A snapshot said the outputs ended at ``ends``: what this run has not written since
        is read from the earliest of them at a restart (a later one could skip outputs)."""
        for tp, offset in ends.items():
            self.ends[tp] = min(offset, self.ends.get(tp, offset))

    def remember(self, headers: Iterable[bytes], covered: Mapping[tuple[str, int], int]) -> int:
        """Keep the ids of outputs (their lineage ``headers``) made from an input of the
        partitions being loaded (``covered``: (stream, partition) -> the offset the snapshot
        covers up to) that the snapshot does not cover; returns how many."""
        before = len(self.ids)
        for value in headers:
            try:
                lin = unpack_lineage(value)
            except ValueError:
                continue
            if any(covered.get((c.stream, c.partition), -1) <= c.offset
                   for c in lin.coordinates if (c.stream, c.partition) in covered):
                self.ids.add(lin.id)
        return len(self.ids) - before

    def drop(self, outputs: list[OutRecord]) -> list[OutRecord]:
        """``outputs`` without those the previous run wrote (each id is dropped once)."""
        ids = self.ids
        if not ids:
            return outputs
        kept = []
        for o in outputs:
            if o.id in ids:
                ids.discard(o.id)
                self.dropped += 1
            else:
                kept.append(o)
        return kept
