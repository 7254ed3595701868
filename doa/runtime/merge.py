"""Deterministic merge of a node's co-partitioned inputs by record timestamp.

As Kafka Streams synchronises a task's inputs (``max.task.idle.ms``), a node reading several
streams gets, per partition, one sequence ordered by timestamp; ties keep the declared order
of its inputs. A record is released only when every other input has a record buffered to
compare it with, or that input is known to be caught up (no lag) and has been empty for
``max_idle_ms``. Given the same input logs, the merged order is the same on every run and
replay, whatever the fetches return.

Releasing after ``max_idle_ms`` is the one decision that depends on time: a record that comes
later with an earlier timestamp is taken after records it precedes. A restarted node is given
the positions at which its predecessor's batches ended (``plan``, see :mod:`doa.runtime.cuts`):
up to each, it takes exactly the records before it, in timestamp order, and waits for them
however long an input is empty, so it takes them in the order they were first taken.

Examples
--------
>>> from doa.runtime.runner import RawRecord
>>> m = TimestampMerge(["labels", "features"], max_idle_ms=0)
>>> m.add([RawRecord("features", 0, 0, 10, None, b"f0"),
...        RawRecord("features", 0, 1, 20, None, b"f1")])
>>> [r.value for r in m.release(now_ms=0, caught_up=lambda s: False)]  # labels unknown yet
[]
>>> m.add([RawRecord("labels", 0, 0, 10, None, b"l0")])
>>> [r.value for r in m.release(now_ms=0, caught_up=lambda s: False)]  # another label may come
[b'l0']
>>> [r.value for r in m.release(now_ms=5, caught_up=lambda s: True)]  # labels caught up
[b'f0', b'f1']

Replaying a run that took ``f0`` before a label with an earlier timestamp came:

>>> m = TimestampMerge(["labels", "features"], max_idle_ms=0, plan=[(0, 1), (1, 1)])
>>> m.add([RawRecord("labels", 0, 0, 5, None, b"l0"),
...        RawRecord("features", 0, 0, 10, None, b"f0")])
>>> [r.value for r in m.release(now_ms=0, caught_up=lambda s: True)]
[b'f0', b'l0']
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence

from doa.runtime.runner import RawRecord

log = logging.getLogger(__name__)

GIVE_UP_MS = 5000.0  # a planned record not in the log this long after its input caught up


class TimestampMerge:
    """Buffers for one partition of a node's inputs; see the module docstring.

    ``at``: the next offset of each input (the snapshot's); ``plan``: the positions at which
    the previous run's batches ended, in order (:mod:`doa.runtime.cuts`).
    """

    def __init__(self, streams: Sequence[str], max_idle_ms: int = 20,
                 at: Mapping[str, int] | None = None,
                 plan: Iterable[tuple[int, ...]] | None = None) -> None:
        self.streams = list(streams)
        self.max_idle_ms = max_idle_ms
        self.buffers: dict[str, deque[RawRecord]] = {s: deque() for s in self.streams}
        self.empty_since: dict[str, float | None] = dict.fromkeys(self.streams)
        self.at = {s: (at or {}).get(s, 0) for s in self.streams}
        self.plan: deque[tuple[int, ...]] = deque(plan or ())

    def add(self, records: Iterable[RawRecord]) -> None:
        """Buffer records (each stream's in offset order, as fetched)."""
        for r in records:
            self.buffers[r.stream].append(r)

    def __len__(self) -> int:
        return sum(len(b) for b in self.buffers.values())

    def release(self, now_ms: float, caught_up: Callable[[str], bool]) -> list[RawRecord]:
        """The records that can be processed now, in merged order.

        ``caught_up(stream)`` says whether the consumer has fetched everything the broker has
        of that input (so an empty buffer means: nothing more to compare with, for now).
        """
        out: list[RawRecord] = []
        buffers, at = self.buffers, self.at
        while True:
            cut = self._cut() if self.plan else None
            head: RawRecord | None = None
            for i, s in enumerate(self.streams):
                if cut is not None and at[s] >= cut[i]:
                    continue  # the run before took no more of it before this cut
                buf = buffers[s]
                if not buf:
                    since = self.empty_since[s]
                    if since is None:
                        self.empty_since[s] = since = now_ms
                    if cut is not None:  # it was in the log: wait for it, however long
                        if caught_up(s) and now_ms - since >= GIVE_UP_MS:
                            self._give_up(s, cut[i])
                            break
                        return out
                    if not caught_up(s) or now_ms - since < self.max_idle_ms:
                        return out  # wait: that input may still bring an earlier record
                    continue
                self.empty_since[s] = None
                if head is None or buf[0].timestamp < head.timestamp:
                    head = buf[0]
            else:
                if head is None:
                    return out
                out.append(buffers[head.stream].popleft())
                at[head.stream] = head.offset + 1

    def _cut(self) -> tuple[int, ...] | None:
        """The first planned cut not reached yet (those reached are dropped)."""
        plan, at = self.plan, self.at
        while plan and all(at[s] >= c for s, c in zip(self.streams, plan[0], strict=True)):
            plan.popleft()
        return plan[0] if plan else None

    def _give_up(self, stream: str, offset: int) -> None:
        log.warning("input %r: the records up to offset %d that the node's previous run took "
                    "are not in the log (deleted?); the rest is taken in timestamp order",
                    stream, offset)
        self.plan.clear()
