"""Deterministic merge of a node's co-partitioned inputs by record timestamp.

As Kafka Streams synchronises a task's inputs (``max.task.idle.ms``), a node reading several
streams gets, per partition, one sequence ordered by timestamp; ties keep the declared order
of its inputs. A record is released only when every other input has a record buffered to
compare it with, or that input is known to be caught up (no lag) and has been empty for
``max_idle_ms``. Given the same input logs, the merged order is the same on every run and
replay, whatever the fetches return.

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
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Sequence

from doa.runtime.runner import RawRecord


class TimestampMerge:
    """Buffers for one partition of a node's inputs; see the module docstring."""

    def __init__(self, streams: Sequence[str], max_idle_ms: int = 20) -> None:
        self.streams = list(streams)
        self.max_idle_ms = max_idle_ms
        self.buffers: dict[str, deque[RawRecord]] = {s: deque() for s in self.streams}
        self.empty_since: dict[str, float | None] = dict.fromkeys(self.streams)

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
        buffers = self.buffers
        while True:
            head: RawRecord | None = None
            for s in self.streams:
                buf = buffers[s]
                if not buf:
                    since = self.empty_since[s]
                    if since is None:
                        self.empty_since[s] = since = now_ms
                    if not caught_up(s) or now_ms - since < self.max_idle_ms:
                        return out  # wait: that input may still bring an earlier record
                    continue
                self.empty_since[s] = None
                if head is None or buf[0].timestamp < head.timestamp:
                    head = buf[0]
            if head is None:
                return out
            out.append(buffers[head.stream].popleft())
