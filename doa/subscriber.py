"""Subscribe to streams from a service: decoded events, and records that cannot be decoded
named (:class:`RecordError`), never dropped silently.

A :class:`Subscriber` yields decoded :class:`doa.events.Event` objects with their stream,
partition, offset, key, timestamp and headers; the schema comes from the topology when given
one, otherwise from the versions registered on the broker. :mod:`doa.client` exports it with
the :class:`doa.client.Publisher`.

By default iterating raises a :class:`RecordError` naming a record's stream, partition, offset
and reason; ``on_error="skip"`` counts it in ``errors``; ``on_error="yield"`` yields the
:class:`RecordError` in its place.

A record ``doa dlq --replay`` re-published for a node is not yielded (see
:class:`Subscriber`).

>>> str(RecordError("alerts", 2, 17, "bad-marker", "starts with '0067'"))
"stream 'alerts' partition 2 offset 17: cannot decode (bad-marker): starts with '0067'"
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, Literal, TypeVar, overload

from doa.cluster.codecs import resolve_codecs
from doa.cluster.fetchwait import Poll
from doa.cluster.reach import BrokerUnreachable, check_reachable, reachable
from doa.cluster.security import kafka_python_options
from doa.cluster.streams import topic_partitions
from doa.errors import DecodeError, DoaError, first_line
from doa.events import LINEAGE_HEADER, Event, Lineage, lineage_of, replay_node
from doa.topology.topology import Topology
from doa.wire.codec import Codec

__all__ = ["OnError", "RecordError", "Subscriber", "decode_at", "lineage_at"]

log = logging.getLogger(__name__)
OnError = Literal["raise", "skip", "yield"]
PROBE_S = 5.0  # seconds without a record between probes of the broker (idle_timeout_s=None)
_Item = TypeVar("_Item", covariant=True)


class RecordError(DoaError):
    """A record that could not be decoded: where it is (stream, partition, offset) and why.

    Raised by a :class:`Subscriber` with ``on_error="raise"``, yielded in the record's place
    with ``on_error="yield"``. ``value`` holds the record's bytes as read; ``record`` its decoded
    value when only its lineage header is unreadable (reason ``bad-lineage``).
    """

    def __init__(self, stream: str, partition: int, offset: int, reason: str, detail: str, *,
                 key: bytes | None = None, value: bytes | None = None,
                 timestamp: int = 0, record: dict[str, Any] | None = None) -> None:
        self.record = record
        self.stream = stream
        self.partition = partition
        self.offset = offset
        self.reason = reason
        self.detail = detail
        self.key = key
        self.value = value
        self.timestamp = timestamp
        super().__init__(f"stream {stream!r} partition {partition} offset {offset}: cannot "
                         f"decode ({reason}): {detail}")


class Subscriber(Generic[_Item]):
    """Yield decoded events from streams.

    Parameters
    ----------
    streams : names of the streams to read
    group : a consumer group to share partitions and remember positions (None: read all
        partitions, remember nothing)
    from_beginning : start at the beginning (else at the end, or the group's position)
    idle_timeout_s : stop iterating after this long without a record (None: never). The
        broker is probed then: if it went away, iterating raises a :class:`DoaError` saying
        so instead of ending. With None it is probed every ``PROBE_S`` seconds without a
        record: a warning (logger ``doa.subscriber``) says when it goes and when it is back.
    on_error : what to do with a record that cannot be decoded: ``"raise"`` (the default:
        nothing is dropped unless the caller says so) a :class:`RecordError`; ``"skip"`` it
        and count it in ``errors``; ``"yield"`` the :class:`RecordError` in its place (also
        counted). The broker is probed first: an unreachable one raises
        :class:`doa.cluster.reach.BrokerUnreachable` within seconds.

    Notes
    -----
    A record re-published by ``doa dlq --replay`` for a node (the one that failed on it: its
    ``doa.replay`` header names it, :func:`doa.events.replay_node`) is skipped and counted in
    ``replays``: a subscriber is not a node, it saw the original already, and the replay is
    that node's second chance, not a new record (:mod:`doa.dlq`). A replay whose header names
    no node (written before doa named it) is yielded, as before.
    """

    @overload
    def __init__(self: Subscriber[Event], streams: Iterable[str], *, broker: str,
                 topology: Topology | None = None, group: str | None = None,
                 from_beginning: bool = False, idle_timeout_s: float | None = None,
                 on_error: Literal["raise", "skip"] = "raise") -> None: ...

    @overload
    def __init__(self: Subscriber[Event | RecordError], streams: Iterable[str], *, broker: str,
                 topology: Topology | None = None, group: str | None = None,
                 from_beginning: bool = False, idle_timeout_s: float | None = None,
                 on_error: Literal["yield"]) -> None: ...

    def __init__(self, streams: Iterable[str], *, broker: str, topology: Topology | None = None,
                 group: str | None = None, from_beginning: bool = False,
                 idle_timeout_s: float | None = None, on_error: OnError = "raise") -> None:
        from kafka import KafkaConsumer, TopicPartition

        if on_error not in ("raise", "skip", "yield"):
            raise DoaError(f"on_error={on_error!r}: expected 'raise', 'skip' or 'yield'")
        check_reachable(broker)
        self.broker = broker
        self.streams = list(streams)
        self.on_error = on_error
        self.codecs = {s: codec for s, (codec, _) in
                       resolve_codecs(self.streams, topology, broker).items()}
        self.errors = 0
        self.replays = 0  # records replayed for a node, skipped (see Notes)
        self._consumer = KafkaConsumer(
            bootstrap_servers=broker, **kafka_python_options(broker),
            group_id=group, enable_auto_commit=group is not None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            session_timeout_ms=3000, heartbeat_interval_ms=1000, fetch_max_wait_ms=10,
            allow_auto_create_topics=False)  # a misspelt stream is not made a topic
        self._idle_s = idle_timeout_s or None
        self._read = 0  # messages handed out, for "went away after N records"
        self._poll = Poll(self._consumer)  # the fetch wait stretches while starved
        # Before subscribing: a group's subscription creates a missing topic on tansu
        # (whatever allow_auto_create_topics says) and waits ~30 s on Apache Kafka.
        partitions = self._partitions(broker)
        if group is None:
            tps = [TopicPartition(s, p) for s in self.streams for p in range(partitions[s])]
            self._consumer.assign(tps)
            if from_beginning:
                self._consumer.seek_to_beginning(*tps)
            else:
                self._consumer.seek_to_end(*tps)
        else:
            self._consumer.subscribe(self.streams)

    def _partitions(self, broker: str) -> dict[str, int]:
        """Each stream's number of partitions (one metadata request for all); a one-line error
        if the broker has no such topic (it said "ValueError: No partitions are currently
        assigned")."""
        found = topic_partitions(self._consumer)
        for stream in self.streams:
            if not found.get(stream):
                self._consumer.close()
                raise DoaError(f"stream {stream!r} does not exist on {broker} yet (doa deploy "
                               "or doa run creates a topology's streams)")
        return found

    def __iter__(self) -> Iterator[_Item]:
        for m in self._messages():
            if m.headers and replay_node(m.headers) is not None:
                self.replays += 1
                continue
            try:
                event = self._event(m)
            except RecordError as error:
                self.errors += 1
                if self.on_error == "raise":
                    raise
                if self.on_error == "yield":
                    yield error  # type: ignore[misc]  # only in Subscriber[Event | RecordError]
                continue
            yield event  # type: ignore[misc]

    def _event(self, m: Any) -> Event:
        """Message ``m`` as an :class:`Event`; a :class:`RecordError` if it cannot be read."""
        return event_at(self.codecs[m.topic], m)

    def _messages(self, join_timeout_s: float = 30.0) -> Iterator[Any]:
        """The consumer's messages, until ``idle_timeout_s`` without one. The idle time counts
        only once partitions are assigned (joining a group takes seconds on tansu, longer than
        a short idle timeout) and not while the broker starves the consumer of records it holds
        (the fetch wait stretches meanwhile: :mod:`doa.cluster.fetchwait`)."""
        joined_by = time.monotonic() + join_timeout_s
        last = probed = time.monotonic()
        down_since: float | None = None
        while True:
            polled = self._poll(update_offsets=False)
            got = any(polled.values())
            now = time.monotonic()
            if got:
                yield from self._advancing(polled)
                last = probed = time.monotonic()
            elif self._idle_s is None and now - probed >= PROBE_S:
                probed = now  # silent for a while: is the broker still there?
                down_since = self._watch(down_since, now)
            elif self._poll.stretched or (not self._consumer.assignment() and
                                            now < joined_by):
                last = now  # starved, or not joined yet: not idle
            elif self._idle_s is not None and now - last >= self._idle_s:
                self._check_broker()
                return

    def _what(self) -> str:
        n = self._read
        return f"{n} record{'s' if n != 1 else ''} of {', '.join(self.streams)}"

    def _check_broker(self) -> None:
        """Raise a one-line :class:`DoaError` if the broker went away (an idle stop would
        otherwise look like the end of the records)."""
        try:
            check_reachable(self.broker, timeout_s=2.0)
        except BrokerUnreachable as exc:
            raise DoaError(f"broker {self.broker} went away after {self._what()} "
                           f"({exc.reason})") from None

    def _watch(self, down_since: float | None, now: float) -> float | None:
        """Probe the broker; warn when it goes and when it is back. When it went (None: up)."""
        up = reachable(self.broker, 1.0)
        if not up and down_since is None:
            log.warning("broker %s went away after %s; waiting for it", self.broker,
                        self._what())
            return now
        if up and down_since is not None:
            log.warning("broker %s back after %.0f s; reading %s again", self.broker,
                        now - down_since, ", ".join(self.streams))
            return None
        return down_since

    def _advancing(self, polled: dict[Any, list[Any]]) -> Iterator[Any]:
        """``polled``'s messages, the position moved past each one as it is handed out (as
        kafka-python's own iterator does): a caller that stops early leaves the rest to be
        read again, and a group commits only what was handed out."""
        from kafka.structs import OffsetAndMetadata

        subscription = self._consumer._subscription
        for tp, messages in polled.items():
            for m in messages:
                if not subscription.is_fetchable(tp):  # revoked, paused or reset meanwhile
                    break
                subscription.assignment[tp].position = OffsetAndMetadata(
                    m.offset + 1, "", getattr(m, "leader_epoch", -1))
                self._read += 1
                yield m

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the consumer (committing a group's position), waiting at most ``timeout_s``."""
        self._consumer.close(timeout_ms=int(timeout_s * 1000))

    def __enter__(self) -> Subscriber[_Item]:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(5.0 if exc is None else 1.0)


def event_at(codec: Codec, m: Any) -> Event:
    """Consumed message ``m`` (kafka-python's or aiokafka's) as an :class:`Event`, its id the
    one its lineage header names; a :class:`RecordError` at ``m``'s place if its value or that
    header cannot be read."""
    record = decode_at(codec, m)
    lin = lineage_at(m, record)
    return Event(record, stream=m.topic, partition=m.partition, offset=m.offset,
                 timestamp=m.timestamp, key=m.key, id=lin.id if lin else None,
                 headers=tuple(m.headers or ()))


def decode_at(codec: Codec, m: Any) -> dict[str, Any]:
    """Message ``m``'s value, decoded; else a :class:`RecordError` at ``m``'s place."""
    try:
        if m.value is None:
            raise DecodeError(m.topic, "tombstone", "the record has no value")
        return codec.decode(m.value)
    except Exception as exc:
        raise _record_error(m, exc) from exc


def lineage_at(m: Any, record: dict[str, Any] | None = None) -> Lineage | None:
    """The ``doa`` lineage header of consumed message ``m`` (None without one); a malformed
    one is a :class:`RecordError` at ``m``'s place, reason ``bad-lineage``, holding ``record``
    (``m``'s decoded value, when the caller has it)."""
    try:
        return lineage_of(m.headers)
    except ValueError as exc:
        raise RecordError(m.topic, m.partition, m.offset, "bad-lineage",
                          f"{LINEAGE_HEADER!r} header: {first_line(exc)}", key=m.key,
                          value=m.value, timestamp=m.timestamp, record=record) from None


def _record_error(m: Any, exc: BaseException) -> RecordError:
    """``exc`` (raised decoding message ``m``) as a :class:`RecordError` at ``m``'s place."""
    reason = getattr(exc, "reason", None) or "corrupt"
    text = first_line(exc)
    prefix = f"stream {m.topic!r}: cannot decode ({reason}): "
    detail = text[len(prefix):] if text.startswith(prefix) else text
    return RecordError(m.topic, m.partition, m.offset, reason, detail, key=m.key,
                       value=m.value, timestamp=m.timestamp)
