"""Service clients on kafka-python: publish records into a stream, subscribe to streams.

Services never touch bytes or Kafka: a :class:`Publisher` validates and encodes records and
adds lineage headers; a :class:`Subscriber` yields decoded :class:`doa.events.Event` objects
with their stream, partition, offset, key, timestamp and headers. The schema comes from the
topology when given one, otherwise from the versions registered on the broker.

Examples
--------
>>> with Publisher("readings", broker="127.0.0.1:9092") as pub:      # doctest: +SKIP
...     pub.send({"sensor_id": "s1", "ts": 1, "value": 20.5,
...               "location": {"lat": 52.0, "lon": 4.3}})
>>> for event in Subscriber(["alerts"], broker="127.0.0.1:9092"):   # doctest: +SKIP
...     print(event["sensor_id"], event.offset)

A record that cannot be decoded is never dropped silently (:mod:`doa.subscriber`, where the
:class:`Subscriber` lives: :class:`RecordError`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from doa.cluster.codecs import resolve_codec, resolve_codecs
from doa.cluster.limits import record_limit, record_size
from doa.cluster.reach import check_reachable
from doa.cluster.security import kafka_python_options
from doa.errors import DoaError, Unacknowledged, first_line
from doa.events import (
    LINEAGE_HEADER,
    Lineage,
    key_bytes,
    pack_lineage,
    partition_for,
)
from doa.node import Stream
from doa.subscriber import OnError, RecordError, Subscriber, decode_at, lineage_at
from doa.topology.topology import Topology
from doa.wire.codec import Codec
from doa.wire.schema import Schema

__all__ = ["OnError", "Publisher", "RecordError", "Subscriber", "decode_at", "lineage_at"]


class Publisher:
    """Validate, encode and send records to one stream; flushes on close.

    ``send`` raises :class:`doa.errors.EncodeError` for a record that does not match, and a
    :class:`doa.errors.DoaError` for one larger than the broker takes
    (:mod:`doa.cluster.limits`), before anything leaves the process; :meth:`check` raises the
    same without sending. With a topology, its schema must be one of the stream's versions
    registered on the broker, if it has any (``doa deploy`` registers it): a record of another
    would be undecodable by every reader. The stream must exist on the broker (``doa deploy``
    creates it; a first send would have the broker create it with its default partitions),
    with the topology's partitions if one is given. The broker is probed first
    (:func:`doa.cluster.reach.check_reachable`),
    so an unreachable one is a one-line :class:`doa.cluster.reach.BrokerUnreachable` within seconds.
    ``acknowledged`` counts the records the broker has acknowledged (after :meth:`flush`).
    """

    def __init__(self, stream: str, *, broker: str, topology: Topology | None = None,
                 name: str = "publisher", linger_ms: int = 5) -> None:
        from kafka import KafkaProducer

        check_reachable(broker)
        self.stream = stream
        self.name = name
        self.codec, self.spec = _resolve(stream, topology, broker)
        if topology is not None:
            _check_registered(stream, topology.name, self.codec.schema, broker)
        self._producer = KafkaProducer(bootstrap_servers=broker, **kafka_python_options(broker),
                                       linger_ms=linger_ms,
                                       acks="all", client_id=f"doa-{name}")
        try:
            self._limit = record_limit(broker, stream, self._producer.config["max_request_size"])
        except BaseException:
            _abandon(self._producer)
            raise
        self._count = 0
        self.acknowledged = 0
        self._futures: list[tuple[Any, bytes | None, dict[str, Any] | None]] = []

    def send(self, record: Mapping[str, Any], timestamp_ms: int | None = None,
             partition: int | None = None) -> bytes:
        """Send one record (its Kafka timestamp: ``timestamp_ms`` or now); return its id.

        The partition is the key's (Kafka's default partitioner) unless given.
        """
        if timestamp_ms is not None and (type(timestamp_ms) is not int or timestamp_ms < 0):
            raise DoaError(f"stream {self.stream!r}: timestamp_ms must be an int, ms since the "
                           f"epoch (>= 0), got {type(timestamp_ms).__name__} {timestamp_ms!r}")
        event_id = uuid.uuid4().bytes
        value, key, headers = self._encode(record, event_id)
        if partition is None:
            partition = partition_for(key, self.spec.partitions, self._count)
        self._count += 1
        self._futures.append((self._producer.send(
            self.stream, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms,
            headers=headers), event_id, dict(record)))
        if len(self._futures) >= 10_000:
            self.flush()
        return event_id

    def check(self, record: Mapping[str, Any]) -> None:
        """Raise what :meth:`send` would for ``record`` (it does not match the schema, or is
        too large), sending nothing (``doa publish`` checks a whole file first)."""
        self._encode(record, bytes(16))

    def _encode(self, record: Mapping[str, Any], event_id: bytes
                ) -> tuple[bytes, bytes | None, list[tuple[str, bytes]]]:
        value = self.codec.encode(record)
        key = key_bytes(record.get(self.spec.key)) if self.spec.key else None
        header = pack_lineage(Lineage(event_id, self.name, self.codec.schema.fingerprint))
        headers = [(LINEAGE_HEADER, header)]
        self._limit.check(self.stream, record_size(key, value, headers))
        return value, key, headers

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are (for tests of dead-letter handling and for replays)."""
        self._limit.check(self.stream, record_size(key, value, []))
        partition = partition_for(key, self.spec.partitions, self._count)
        self._count += 1
        self._futures.append((self._producer.send(self.stream, value=value, key=key,
                                                  partition=partition), None, None))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Block until every record sent so far is acknowledged; raise
        :class:`doa.errors.Unacknowledged` naming how many were not (and why) if any failed
        or ``timeout_s`` passed: its ``ids`` and ``records`` are those records, to resend."""
        from kafka.errors import KafkaTimeoutError

        sent, self._futures = self._futures, []
        with contextlib.suppress(KafkaTimeoutError):  # what is not done counts as failed
            self._producer.flush(timeout=timeout_s)
        failed = [s for s in sent if not s[0].is_done or s[0].failed()]
        self.acknowledged += len(sent) - len(failed)
        if failed:
            first = failed[0][0]
            why = (first_line(first.exception) if first.is_done
                   else f"no acknowledgement in {timeout_s:g} s")
            raise Unacknowledged(
                f"stream {self.stream!r}: {len(failed)} of {len(sent)} records not "
                f"acknowledged by the broker ({why}); {self.acknowledged} acknowledged in all",
                [s[1] for s in failed], [s[2] for s in failed])

    def close(self, timeout_s: float = 60.0) -> None:
        """Flush (see :meth:`flush`) and close the producer (at once if the flush failed: its
        close flushes again, and the client's own timeout error would hide the flush's)."""
        flushed = False
        try:
            self.flush(timeout_s)
            flushed = True
        finally:
            if not flushed:  # kafka-python's close would flush (and raise) again, as would
                _abandon(self._producer)  # its __del__ later: "Exception ignored in ..."
            with contextlib.suppress(Exception):
                self._producer.close(timeout=1 if flushed else 0)

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is None:
            self.close()
            return
        # Already failing (or Ctrl-C): do not wait for a broker that may be gone; the error
        # being raised is the one to show. A close that could not flush leaves the producer
        # open, and its __del__ would flush and raise again at exit: abandon it.
        try:
            self._producer.close(timeout=2)
        except Exception:
            _abandon(self._producer)
            with contextlib.suppress(Exception):
                self._producer.close(timeout=0)


def _resolve(stream: str, topology: Topology | None, broker: str) -> tuple[Codec, Stream]:
    """:func:`doa.cluster.codecs.resolve_codec`, once ``stream`` is known to exist on
    ``broker`` (with the topology's partitions, if given): a producer's first send into a
    missing topic would have the broker create it with its default partitions (tansu does,
    whatever the client asks), and the topology's nodes would then stall on it."""
    from doa.cluster.admin import internal_topic
    from doa.cluster.streams import broker_topics, no_such_stream

    declared = resolve_codec(stream, topology, broker) if topology is not None else None
    topics = broker_topics(broker)  # one metadata request for every topic: creates none (and
    # serves resolve_codecs below, which would read them again)
    have = topics.get(stream)
    if not have:
        missing = no_such_stream(stream, broker, topics)
        if declared is None and any(not internal_topic(t) for t in topics):
            raise missing  # a misspelt name, likely: the streams there say which
        raise DoaError(f"{missing}; `doa deploy TOPOLOGY` creates a topology's streams")
    if topology is None or declared is None:
        return resolve_codecs([stream], None, broker, topics)[stream]
    if declared[1].partitions != have:
        raise DoaError(f"stream {stream!r} has {have} partitions on {broker}, topology "
                       f"{topology.name!r} declares {declared[1].partitions} (its nodes would "
                       "not find the keys where this publisher puts them): declare "
                       f"partitions={have} for it, or delete the topic and deploy again")
    return declared


def _check_registered(stream: str, topology: str, schema: Schema, broker: str) -> None:
    """Refuse to write ``schema`` into ``stream`` if the stream has registered versions and
    ``schema`` is not one of them (no reader could decode its records)."""
    from doa.cluster.registry import is_registered, read_registry

    versions = read_registry(broker).get(stream, [])
    if not versions or is_registered(schema, versions):
        return
    registered = ", ".join(f"v{v.version} {v.schema.fingerprint.hex()}" for v in versions)
    raise DoaError(f"stream {stream!r}: schema {schema.fullname} (fingerprint "
                   f"{schema.fingerprint.hex()}) of topology {topology!r} is not registered on "
                   f"{broker} (registered: {registered}); readers could not decode its records: "
                   "run `doa deploy TOPOLOGY` first (it checks compatibility and registers it)")


def _abandon(producer: Any) -> None:
    """Stop a kafka-python producer at once, dropping what it could not send (its ``close``
    flushes first and raises when the broker is gone, and leaves it open)."""
    with contextlib.suppress(Exception):
        sender = getattr(producer, "_sender", None)
        if sender is not None:
            sender.force_close()
            sender.join(1)
        producer._closed = True
