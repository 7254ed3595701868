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
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import Any

from doa.codec import Codec
from doa.errors import DoaError
from doa.events import LINEAGE_HEADER, Event, Lineage, key_bytes, pack_lineage, partition_for
from doa.security import kafka_python_options
from doa.topology import Stream, Topology

log = logging.getLogger(__name__)


def resolve_codec(stream: str, topology: Topology | None, broker: str) -> tuple[Codec, Stream]:
    """The codec and declaration of ``stream``, from the topology or the broker's registry."""
    from doa.registry import read_registry

    if topology is not None:
        if stream not in topology.streams:
            raise DoaError(f"topology {topology.name!r} declares no stream {stream!r} "
                           f"(streams: {', '.join(topology.streams)})")
        return topology.codec(stream), topology.streams[stream]
    versions = read_registry(broker).get(stream)
    if not versions:
        raise DoaError(f"stream {stream!r} has no registered schema on {broker}; run its "
                       "topology once (doa run registers schemas) or pass topology=")
    current = versions[-1].schema
    return (Codec(stream, current, [v.schema for v in versions[:-1]]),
            Stream(stream, current.fullname, versions[-1].key, _partitions(broker, stream)))


def _partitions(broker: str, stream: str) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker, **kafka_python_options(broker))
    try:
        return len(c.partitions_for_topic(stream) or [0])
    finally:
        c.close()


class Publisher:
    """Validate, encode and send records to one stream; flushes on close.

    ``send`` raises :class:`doa.errors.EncodeError` for a record that does not match, before
    anything leaves the process.
    """

    def __init__(self, stream: str, *, broker: str, topology: Topology | None = None,
                 name: str = "publisher", linger_ms: int = 5) -> None:
        from kafka import KafkaProducer

        self.stream = stream
        self.name = name
        self.codec, self.spec = resolve_codec(stream, topology, broker)
        self._producer = KafkaProducer(bootstrap_servers=broker, **kafka_python_options(broker),
                                       linger_ms=linger_ms,
                                       acks="all", client_id=f"doa-{name}")
        self._count = 0
        self._futures: list[Any] = []

    def send(self, record: Mapping[str, Any], timestamp_ms: int | None = None,
             partition: int | None = None) -> bytes:
        """Send one record (its Kafka timestamp: ``timestamp_ms`` or now); return its id.

        The partition is the key's (Kafka's default partitioner) unless given.
        """
        value = self.codec.encode(record)
        key = key_bytes(record.get(self.spec.key)) if self.spec.key else None
        event_id = uuid.uuid4().bytes
        header = pack_lineage(Lineage(event_id, self.name, self.codec.schema.fingerprint))
        if partition is None:
            partition = partition_for(key, self.spec.partitions, self._count)
        self._count += 1
        self._futures.append(self._producer.send(
            self.stream, value=value, key=key, partition=partition, timestamp_ms=timestamp_ms,
            headers=[(LINEAGE_HEADER, header)]))
        if len(self._futures) >= 10_000:
            self.flush()
        return event_id

    def send_raw(self, value: bytes, key: bytes | None = None) -> None:
        """Send bytes as they are (for tests of dead-letter handling and for replays)."""
        partition = partition_for(key, self.spec.partitions, self._count)
        self._count += 1
        self._futures.append(self._producer.send(self.stream, value=value, key=key,
                                                 partition=partition))

    def flush(self) -> None:
        """Block until every record sent so far is acknowledged (raise if one failed)."""
        self._producer.flush()
        futures, self._futures = self._futures, []
        for f in futures:
            f.get(timeout=30)

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._producer.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class Subscriber:
    """Yield decoded events from streams.

    Parameters
    ----------
    streams : names of the streams to read
    group : a consumer group to share partitions and remember positions (None: read all
        partitions, remember nothing)
    from_beginning : start at the beginning (else at the end, or the group's position)
    idle_timeout_s : stop iterating after this long without a record (None: never)
    """

    def __init__(self, streams: Iterable[str], *, broker: str, topology: Topology | None = None,
                 group: str | None = None, from_beginning: bool = False,
                 idle_timeout_s: float | None = None, warn: bool = True) -> None:
        from kafka import KafkaConsumer, TopicPartition

        self.streams = list(streams)
        self.codecs = {s: resolve_codec(s, topology, broker)[0] for s in self.streams}
        self.errors = 0
        self.warn = warn
        self._consumer = KafkaConsumer(
            bootstrap_servers=broker, **kafka_python_options(broker),
            group_id=group, enable_auto_commit=group is not None,
            auto_offset_reset="earliest" if from_beginning else "latest",
            session_timeout_ms=3000, heartbeat_interval_ms=1000, fetch_max_wait_ms=10,
            consumer_timeout_ms=int(idle_timeout_s * 1000) if idle_timeout_s else float("inf"))
        if group is None:
            tps = [TopicPartition(s, p) for s in self.streams
                   for p in sorted(self._consumer.partitions_for_topic(s) or [])]
            self._consumer.assign(tps)
            if from_beginning:
                self._consumer.seek_to_beginning(*tps)
            else:
                self._consumer.seek_to_end(*tps)
        else:
            self._consumer.subscribe(self.streams)

    def __iter__(self) -> Iterator[Event]:
        for m in self._messages():
            try:
                record = self.codecs[m.topic].decode(m.value)
            except DoaError as exc:
                self.errors += 1
                report = log.warning if self.warn else log.debug
                report("skipping %s/%s@%s: %s", m.topic, m.partition, m.offset, exc)
                continue
            headers = tuple(m.headers or ())
            lin = None
            for name, value in headers:
                if name == LINEAGE_HEADER:
                    from doa.events import unpack_lineage

                    lin = unpack_lineage(value)
            yield Event(record, stream=m.topic, partition=m.partition, offset=m.offset,
                        timestamp=m.timestamp, key=m.key, id=lin.id if lin else None,
                        headers=headers)

    def _messages(self, join_timeout_s: float = 30.0) -> Iterator[Any]:
        """The consumer's messages. The idle timeout counts only once partitions are assigned:
        joining a group takes seconds on tansu, longer than a short idle timeout."""
        joined_by = time.monotonic() + join_timeout_s
        while True:
            assigned = bool(self._consumer.assignment())
            yield from self._consumer  # stops after idle_timeout_s without a record
            if assigned or time.monotonic() > joined_by:
                return

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
