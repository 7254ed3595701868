"""A stream's codec for readers: from a topology (reading every registered version) or from
the broker's registry alone.

A reader given a topology decodes with the topology's schema, and a record written under
another version registered on the broker decodes with that version, then resolves into the
topology's schema (:class:`RegisteredCodec`: the registry is read once, on the first payload
of a version the topology does not know). Without a topology the latest registered version
reads, with the older ones as its history.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from doa.errors import DecodeError, DoaError
from doa.node import Stream
from doa.topology.topology import Topology
from doa.wire.codec import Codec

__all__ = ["RegisteredCodec", "resolve_codec", "resolve_codecs"]


def resolve_codec(stream: str, topology: Topology | None, broker: str) -> tuple[Codec, Stream]:
    """The codec and declaration of ``stream``, from the topology (a :class:`RegisteredCodec`)
    or the broker's registry (the latest version reads)."""
    return resolve_codecs([stream], topology, broker)[stream]


def resolve_codecs(streams: Iterable[str], topology: Topology | None, broker: str,
                   topics: Mapping[str, int] | None = None) -> dict[str, tuple[Codec, Stream]]:
    """:func:`resolve_codec` of each of ``streams``; without a topology the registry and the
    broker's topics (``topics``, if the caller has read them already) are read once for all
    of them."""
    from doa.cluster.registry import read_registry
    from doa.cluster.streams import broker_topics, no_such_stream

    if topology is not None:
        return {s: _from_topology(s, topology, broker) for s in streams}
    registry = read_registry(broker)
    topics = broker_topics(broker) if topics is None else topics
    out: dict[str, tuple[Codec, Stream]] = {}
    for stream in streams:
        versions = registry.get(stream)
        if not versions:
            if stream not in topics:
                raise no_such_stream(stream, broker, topics)
            raise DoaError(f"stream {stream!r} has no registered schema on {broker}; run its "
                           "topology once (doa run registers schemas) or give its topology "
                           "(-t TOPOLOGY on the command line, topology= in Python)")
        current = versions[-1].schema
        out[stream] = (Codec(stream, current, [v.schema for v in versions[:-1]]),
                       Stream(stream, current.fullname, versions[-1].key, topics.get(stream) or 1))
    return out


def _from_topology(stream: str, topology: Topology, broker: str) -> tuple[Codec, Stream]:
    if stream not in topology.streams:
        raise DoaError(f"topology {topology.name!r} declares no stream {stream!r} "
                       f"(streams: {', '.join(topology.streams)})")
    return RegisteredCodec(topology.codec(stream), broker), topology.streams[stream]


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
        from doa.cluster.registry import registered_history

        self._registry_read = True
        known = self.history.keys() | {self.schema.fingerprint}
        for v in registered_history(self.broker, self.stream, known):
            self.history[v.schema.fingerprint] = v.schema
        return super().decode(data)
