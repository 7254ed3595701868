"""Bounded reads of a stream: every partition from a start to the end it had when reading began.

A :class:`Reader` is an aiokafka consumer without a group, driven on an event loop of its own
so that callers stay synchronous. :meth:`Reader.ends` fixes each partition's range when it is
called, so an export ends by itself: no idle timeout, and records written meanwhile are left
for the next one. The end comes from a fetch response's high watermark: tansu answers
ListOffsets(latest) with the base offset of the last batch + 1 (a lower bound), so
:meth:`Reader.ends` fetches at that offset - 1 and takes the watermark the fetch reports.

:meth:`Reader.batches` reads one partition at a time, so the order of an export is
deterministic: partition 0 in offset order, then partition 1, and so on.

Examples
--------
>>> with Reader("127.0.0.1:9092") as reader:                         # doctest: +SKIP
...     for p, (begin, end) in reader.ends("outcomes").items():
...         for batch in reader.batches("outcomes", p, begin, end):
...             print(p, [m.offset for m in batch][:3])
0 [0, 1, 2]
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, TypeVar

from doa.errors import DoaError
from doa.topology.topology import Topology
from doa.wire.codec import Codec

T = TypeVar("T")

FETCH_BYTES = 16 << 20  # per partition and per fetch: large reads, few round trips
BATCH = 10_000


class Reader:
    """Read partitions of streams between fixed offsets; see the module docstring.

    Parameters
    ----------
    broker : bootstrap address
    timeout_s : how long a partition may give nothing while records are still due before
        the read fails, naming stream, partition and offset (it only bounds a failure)
    """

    def __init__(self, broker: str, timeout_s: float = 60.0) -> None:
        self.broker = broker
        self.timeout_s = timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None  # __enter__ makes it
        self._consumer: Any = None

    def __enter__(self) -> Reader:
        from aiokafka import AIOKafkaConsumer

        from doa.cluster.reach import check_reachable
        from doa.cluster.security import aiokafka_options

        check_reachable(self.broker)
        options = aiokafka_options(self.broker)
        self._loop = asyncio.new_event_loop()

        async def start() -> Any:  # aiokafka binds a consumer to the loop it is made on
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.broker, **options, enable_auto_commit=False,
                group_id=None, fetch_max_wait_ms=50, max_partition_fetch_bytes=FETCH_BYTES,
                fetch_max_bytes=4 * FETCH_BYTES)
            await consumer.start()
            return consumer

        try:
            self._consumer = self._run(start())
        except BaseException:
            self._loop.close()
            self._loop = None
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if self._consumer is not None:
                self._run(self._consumer.stop())
        finally:
            if self._loop is not None:
                self._loop.close()

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            raise DoaError("Reader: use it in a with block")
        return self._loop.run_until_complete(coro)

    def _assign(self, offsets: dict[Any, int]) -> None:
        """Read these partitions (only) from these offsets."""
        async def assign() -> None:  # aiokafka wants its loop running for these
            self._consumer.assign(list(offsets))
            for tp, offset in offsets.items():
                self._consumer.seek(tp, offset)

        self._run(assign())

    def partitions(self, stream: str) -> list[int]:
        """The partitions of ``stream``; a one-line error if the broker has no such topic."""
        # consumer.topics() fetches every topic's metadata but keeps only their names, and the
        # consumer's own metadata covers the assigned topics only: ask the client itself.
        cluster = self._run(self._consumer._client.fetch_all_metadata())
        partitions = cluster.partitions_for_topic(stream)
        if not partitions:
            raise DoaError(f"stream {stream!r} does not exist on {self.broker} (nothing was "
                           "ever written to it, or the topology did not run there)")
        return sorted(partitions)

    def ends(self, stream: str) -> dict[int, tuple[int, int]]:
        """Each partition's first offset and its end now: ``{partition: (begin, end)}``."""
        from aiokafka.structs import TopicPartition

        tps = [TopicPartition(stream, p) for p in self.partitions(stream)]
        c = self._consumer
        begins = self._run(c.beginning_offsets(tps))
        listed = self._run(c.end_offsets(tps))
        probe = [tp for tp in tps if listed[tp] > begins[tp]]
        ends = {tp.partition: (begins[tp], listed[tp]) for tp in tps}
        if not probe:
            return ends
        self._assign({tp: listed[tp] - 1 for tp in probe})
        deadline = time.monotonic() + self.timeout_s
        waiting = set(probe)
        while waiting:
            if time.monotonic() > deadline:
                raise DoaError(f"stream {stream!r}: partitions "
                               f"{sorted(tp.partition for tp in waiting)} answered no fetch "
                               f"in {self.timeout_s:g} s")
            self._run(c.getmany(*waiting, timeout_ms=200, max_records=1))
            for tp in list(waiting):
                high = c.highwater(tp)
                if high is not None:
                    ends[tp.partition] = (begins[tp], max(listed[tp], high))
                    waiting.discard(tp)
        return ends

    def batches(self, stream: str, partition: int, start: int, end: int,
                size: int = BATCH) -> Iterator[list[Any]]:
        """Records of ``[start, end)`` of one partition in offset order, in lists of at most
        ``size`` (aiokafka ``ConsumerRecord``: offset, timestamp, key, value, headers)."""
        from aiokafka.structs import TopicPartition

        if start >= end:
            return
        c = self._consumer
        tp = TopicPartition(stream, partition)
        self._assign({tp: start})
        position = start
        deadline = time.monotonic() + self.timeout_s
        while position < end:
            got = self._run(c.getmany(tp, timeout_ms=200, max_records=size)).get(tp, [])
            if got:
                deadline = time.monotonic() + self.timeout_s
                if got[-1].offset >= end:
                    got = [m for m in got if m.offset < end]
                if got:
                    yield got
            position = max(position, self._run(c.position(tp)))
            if not got and time.monotonic() > deadline:
                raise DoaError(f"stream {stream!r} partition {partition} offset {position}: "
                               f"no record in {self.timeout_s:g} s, though the partition "
                               f"ended at {end} when the read began")


def off_loop(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn`` here, or in a thread when this thread runs an event loop (a notebook)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return fn(*args, **kwargs)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def codecs_for(topology: Topology, streams: Iterable[str], broker: str) -> dict[str, Codec]:
    """The codec of each of ``streams``: the topology's schema reads; a record written under
    another registered version decodes with it (:class:`doa.cluster.codecs.RegisteredCodec`)."""
    from doa.cluster.codecs import resolve_codec

    return {stream: resolve_codec(stream, topology, broker)[0] for stream in streams}


def load(topology: Topology | str) -> Topology:
    """A topology, given as one or as a file or module spec (:mod:`doa.topology.loader`)."""
    if isinstance(topology, Topology):
        return topology
    from doa.topology.loader import load_topology

    return load_topology(topology)
