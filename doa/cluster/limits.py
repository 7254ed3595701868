"""The largest record a producer can put into a stream, and the one-line error for a larger one.

Two limits apply: kafka-python's ``max_request_size`` (1 MiB unless set), which the producer
checks before it sends, and the stream's ``max.message.bytes`` on the broker
(:func:`doa.cluster.admin.batch_limits`; Apache Kafka's default is a little above 1 MiB, tansu
has none), which the broker checks on each batch. The smaller one is the record's limit. Sizes
are kafka-python's estimate of a batch holding the record alone (key, value and headers), the
size it compares with ``max_request_size``.

Examples
--------
>>> limit = RecordLimit(1000, "max_request_size")
>>> limit.check("events", 1000)
>>> print(limit.too_large("events", 2000))
stream 'events': a record of 2000 bytes is larger than the limit of 1000 bytes (max_request_size)
>>> record_size(b"k", b"v" * 100, [("doa.lineage", b"x" * 40)])
240
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from dataclasses import dataclass

from doa.errors import DoaError

__all__ = ["RecordLimit", "record_limit", "record_size"]


@dataclass(frozen=True)
class RecordLimit:
    """The largest record (in bytes, as :func:`record_size` counts) and where the limit comes
    from, to name it in the error."""

    bytes: int
    source: str

    def too_large(self, stream: str, size: int) -> DoaError:
        """The error for a record of ``size`` bytes into ``stream``."""
        return DoaError(f"stream {stream!r}: a record of {size} bytes is larger than the limit "
                        f"of {self.bytes} bytes ({self.source})")

    def check(self, stream: str, size: int) -> None:
        """Raise :meth:`too_large`'s error if ``size`` is above the limit."""
        if size > self.bytes:
            raise self.too_large(stream, size)


def record_size(key: bytes | None, value: bytes | None,
                headers: Sequence[tuple[str, bytes]]) -> int:
    """The size kafka-python gives a record (a v2 batch holding it alone)."""
    from kafka.record.default_records import DefaultRecordBatchBuilder

    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, list(headers)))


def record_limit(broker: str, stream: str, max_request_size: int) -> RecordLimit:
    """The limit of a record into ``stream``: the producer's ``max_request_size``, or the
    stream's ``max.message.bytes`` on ``broker`` when smaller (a broker that cannot tell
    has none)."""
    from doa.cluster.admin import batch_limits

    def ask() -> dict[str, int]:
        return asyncio.run(batch_limits(broker, [stream]))

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        limits = ask()
    else:  # called from async code: its loop is busy, ask from a thread of our own
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            limits = pool.submit(ask).result()
    topic = limits.get(stream)
    if topic is not None and topic < max_request_size:
        return RecordLimit(topic, f"max.message.bytes of stream {stream!r} on {broker}")
    return RecordLimit(max_request_size, "the producer's max_request_size (kafka-python)")
