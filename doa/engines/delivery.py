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
import functools
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, KafkaTimeoutError

from doa.engines import NodeStats
from doa.errors import DoaError
from doa.runtime.runner import OutRecord

log = logging.getLogger(__name__)


async def deliver(producer: AIOKafkaProducer, outputs: Sequence[OutRecord], stats: NodeStats,
                  node: str, limits: Mapping[str, int] | None = None) -> list[int]:
    """Send ``outputs`` in order (per partition) until the broker acknowledged each; a batch
    that fails on a retriable error (the broker is away) is sent again, same ids.
    ``stats.outputs_unacked`` counts those not yet acknowledged while it waits. Returns each
    output's offset in its partition, as the broker acknowledged it (-1: not known).

    Outputs go in record batches built here (aiokafka's ``create_batch``/``send_batch``), one
    future per batch instead of one per record: the per-record ``send`` path costs several µs
    of Python and a future each. Each batch is closed when handed over, so it leaves without
    lingering. A record larger than half a batch goes alone through ``send``. ``limits``: the
    largest batch each stream's topic takes (its ``max.message.bytes``, from
    :func:`doa.cluster.admin.batch_limits`); a stream whose limit is below the producer's batch
    size gets batches of that size, a record alone in its own (a topic that refuses one record
    refuses it however it is batched).
    """
    todo, pause = list(outputs), 0.1
    at: dict[int, int] = {}  # id(output) -> its offset
    while todo:
        stats.outputs_unacked = len(todo)
        sent = await _send(producer, todo, limits or {})
        results = await asyncio.gather(*(f for f, _ in sent), return_exceptions=True)
        for r, (_, group) in zip(results, sent, strict=True):
            if isinstance(r, BaseException):
                try:
                    retriable(r)
                except KafkaError as exc:
                    raise refused(node, group[0].stream, group[0].partition, exc) from exc
            else:  # a batch's records have consecutive offsets from its base offset
                base = getattr(r, "offset", -1)
                for i, o in enumerate(group):
                    at[id(o)] = base + i if base >= 0 else -1
        handed = {id(o) for _, group in sent for o in group}
        failed = [o for (_, group), r in zip(sent, results, strict=True)
                  if isinstance(r, BaseException) for o in group]
        todo = failed + [o for o in todo if id(o) not in handed]
        if todo:
            log.info("node %s: %s outputs not acknowledged; sending them again", node,
                     len(todo))
            await asyncio.sleep(pause)
            pause = min(2 * pause, 2.0)
    stats.outputs_unacked = 0
    return [at.get(id(o), -1) for o in outputs]


async def _send(producer: AIOKafkaProducer, todo: Sequence[OutRecord],
                limits: Mapping[str, int]) -> list[tuple[Any, list[OutRecord]]]:
    """Hand ``todo`` to the producer, each partition's records in order; the future of each
    batch it took with the records in it (it stops at the first it refused with a retriable
    error: those after it are handed over again later)."""
    groups: dict[tuple[str, int], list[OutRecord]] = {}
    for out in todo:
        group = groups.get((out.stream, out.partition))
        if group is None:
            groups[(out.stream, out.partition)] = [out]
        else:
            group.append(out)
    accumulator = getattr(producer, "_message_accumulator", None)  # none: send one by one
    batch_size = accumulator._batch_size if hasattr(producer, "create_batch") and \
        accumulator is not None else -2
    sent: list[tuple[Any, list[OutRecord]]] = []
    try:
        for (stream, partition), group in groups.items():
            batch: Any = None
            members: list[OutRecord] = []
            cap = limits.get(stream, batch_size)
            create: Any = getattr(producer, "create_batch", None) if cap >= batch_size else \
                functools.partial(_capped_batch, producer, cap)  # none: all through send
            limit = batch_size // 2 if cap >= batch_size else 1 << 62
            for out in group:
                if len(out.value) > limit:  # alone, through send (its size is checked there)
                    if batch is not None:
                        sent.append((await _submit(producer, batch, stream, partition), members))
                        batch, members = None, []
                    sent.append((await producer.send(
                        stream, out.value, key=out.key, partition=partition,
                        timestamp_ms=out.timestamp, headers=list(out.headers)), [out]))
                    continue
                if batch is None:
                    batch = create()
                if batch.append(timestamp=out.timestamp, key=out.key, value=out.value,
                                headers=list(out.headers)) is None:  # full: send it, start another
                    sent.append((await _submit(producer, batch, stream, partition),
                                 members))
                    batch, members = create(), []
                    batch.append(timestamp=out.timestamp, key=out.key, value=out.value,
                                 headers=list(out.headers))
                members.append(out)
            if batch is not None:
                sent.append((await _submit(producer, batch, stream, partition),
                             members))
    except KafkaError as exc:
        retriable(exc)
    return sent


def _capped_batch(producer: AIOKafkaProducer, cap: int) -> Any:
    """An empty batch for a topic taking batches of at most ``cap`` bytes (its first record
    goes in whatever its size: one the topic refuses alone is refused for good)."""
    from aiokafka.producer.message_accumulator import BatchBuilder

    accumulator: Any = getattr(producer, "_message_accumulator", None)
    return BatchBuilder(cap, getattr(accumulator, "_compression_type", 0),
                        key_serializer=None, value_serializer=None)


async def _submit(producer: AIOKafkaProducer, batch: Any, stream: str, partition: int) -> Any:
    """Hand a batch to the producer, closed: it leaves at once instead of waiting
    ``linger_ms`` for more records (none will come: :func:`deliver` waits for it)."""
    batch.close()
    return await producer.send_batch(batch, stream, partition=partition)


class OutputsRefused(DoaError):
    """The broker refused a node's outputs for good (see :func:`refused`)."""


def refused(node: str, stream: str, partition: int, exc: BaseException) -> OutputsRefused:
    """The one-line error of outputs the broker refused for good: what, where, what to do.

    >>> from aiokafka.errors import MessageSizeTooLargeError
    >>> e = refused("count", "counts", 2, MessageSizeTooLargeError())
    >>> str(e).startswith("node 'count': the broker refused its outputs to stream 'counts' "
    ...                   "(partition 2): MessageSizeTooLargeError: a record batch over")
    True
    >>> "nothing is lost" in str(e), chr(10) in str(e)
    (True, False)
    """
    name = type(exc).__name__
    why = {"MessageSizeTooLargeError": "a record batch over the topic's max.message.bytes (doa "
                                       "sizes its batches to the limit the topic had when the "
                                       "node started: a record over it, or a limit lowered "
                                       "since)",
           "RecordTooLargeError": "a record over the producer's largest request",
           }.get(name, str(exc) or "not retriable")
    return OutputsRefused(
        f"node {node!r}: the broker refused its outputs to stream {stream!r} (partition "
        f"{partition}): {name}: {why}; nothing is lost: no snapshot covers them, and a "
        "restart makes them again once the stream takes them")


def retriable(exc: BaseException) -> None:
    """Return if waiting for the broker may cure ``exc`` (it is away, or has no leader yet);
    otherwise raise it (a record too large, an authorisation error: retrying cannot help)."""
    if isinstance(exc, KafkaError) and (exc.retriable or isinstance(exc, KafkaTimeoutError)):
        return
    raise exc

