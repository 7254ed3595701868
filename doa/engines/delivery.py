"""Delivering a batch's outputs with aiokafka: in order, each until the broker acknowledged it.

The batch engine (:mod:`doa.engines.kafka`) calls :func:`deliver` before it commits offsets or
writes a snapshot, so neither ever claims to cover an output the broker does not hold. While
the broker is away an unacknowledged output is sent again with the same event id (consumers
de-duplicate); the run's shutdown grace bounds the wait. An error that waiting cannot cure (a
record too large, an authorisation error) is raised at once.

Examples
--------
>>> from aiokafka.errors import KafkaTimeoutError, RecordTooLargeError
>>> retriable(KafkaTimeoutError()) is None
True
>>> try:
...     retriable(RecordTooLargeError())
... except RecordTooLargeError:
...     print("raised")
raised
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from doa.engines import NodeStats
from doa.runtime.runner import OutRecord

log = logging.getLogger(__name__)


async def deliver(producer: AIOKafkaProducer, outputs: Sequence[OutRecord], stats: NodeStats,
                  node: str) -> None:
    """Send ``outputs`` in order until the broker acknowledged each; one that fails on a
    retriable error (the broker is away) is sent again, same id. ``stats.outputs_unacked``
    counts those not yet acknowledged while it waits."""
    todo, pause = list(outputs), 0.1
    while todo:
        stats.outputs_unacked = len(todo)
        futures = await _send(producer, todo)
        results = await asyncio.gather(*futures, return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                retriable(r)
        failed = [out for out, r in zip(todo[:len(futures)], results, strict=True)
                  if isinstance(r, BaseException)]
        todo = failed + todo[len(futures):]
        if todo:
            log.info("node %s: %s outputs not acknowledged; sending them again", node,
                     len(todo))
            await asyncio.sleep(pause)
            pause = min(2 * pause, 2.0)
    stats.outputs_unacked = 0


async def _send(producer: AIOKafkaProducer, todo: Sequence[OutRecord]) -> list[Any]:
    """Hand ``todo`` to the producer in order; the futures of those it took (it stops at the
    first it refused with a retriable error)."""
    futures: list[Any] = []
    for out in todo:
        try:
            futures.append(await producer.send(
                out.stream, out.value, key=out.key, partition=out.partition,
                timestamp_ms=out.timestamp, headers=list(out.headers)))
        except KafkaError as exc:
            retriable(exc)
            break
    return futures


def retriable(exc: BaseException) -> None:
    """Return if waiting for the broker may cure ``exc`` (it is away, or has no leader yet);
    otherwise raise it (a record too large, an authorisation error: retrying cannot help)."""
    if isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, KafkaTimeoutError)):
        return
    raise exc
