"""A stream's codec for readers: from a topology (reading every registered version) or from
the broker's registry alone.

A reader given a topology decodes with the topology's schema, and a record written under
another version registered on the broker decodes with that version, then resolves into the
topology's schema (:class:`RegisteredCodec`: the registry is read once, on the first payload
of a version the topology does not know). Without a topology the latest registered version
reads, with the older ones as its history.
"""

from __future__ import annotations

from typing import Any

from doa.cluster.security import kafka_python_options
from doa.errors import DecodeError, DoaError
from doa.node import Stream
from doa.topology.topology import Topology
from doa.wire.codec import Codec

__all__ = ["RegisteredCodec", "resolve_codec"]


def resolve_codec(stream: str, topology: Topology | None, broker: str) -> tuple[Codec, Stream]:
    """The codec and declaration of ``stream``, from the topology (a :class:`RegisteredCodec`)
    or the broker's registry (the latest version reads)."""
    from doa.cluster.registry import read_registry
    from doa.cluster.streams import broker_streams, no_such_stream

    if topology is not None:
        if stream not in topology.streams:
            raise DoaError(f"topology {topology.name!r} declares no stream {stream!r} "
                           f"(streams: {', '.join(topology.streams)})")
        return RegisteredCodec(topology.codec(stream), broker), topology.streams[stream]
    versions = read_registry(broker).get(stream)
    if not versions:
        topics = broker_streams(broker)
        if stream not in topics:
            raise no_such_stream(stream, broker, topics)
        raise DoaError(f"stream {stream!r} has no registered schema on {broker}; run its "
                       "topology once (doa run registers schemas) or give its topology "
                       "(-t TOPOLOGY on the command line, topology= in Python)")
    current = versions[-1].schema
    return (Codec(stream, current, [v.schema for v in versions[:-1]]),
            Stream(stream, current.fullname, versions[-1].key, _partitions(broker, stream)))


class RegisteredCodec(Codec):
    """A topology stream's codec (its schema reads every record) that reads the broker's
    registry once, on a first payload of an unknown version: a record written under another
    registered version decodes with it, then resolves into the topology's schema."""

    def __init__(self, codec: Codec, broker: str) -> None:
        super().__init__(codec.stream, codec.schema, codec.history.values())
        self.broker = broker
        self._registry_read = False

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        try:
            return super().decode(data)
        except DecodeError as exc:
            if exc.reason != "unknown-fingerprint" or self._registry_read:
                raise
        from doa.cluster.registry import read_registry

        self._registry_read = True
        for v in read_registry(self.broker).get(self.stream, []):
            if v.schema.fingerprint != self.schema.fingerprint:
                self.history.setdefault(v.schema.fingerprint, v.schema)
        return super().decode(data)


def _partitions(broker: str, stream: str) -> int:
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker, **kafka_python_options(broker),
                      allow_auto_create_topics=False)
    try:
        return len(c.partitions_for_topic(stream) or [0])
    finally:
        c.close()
