"""Registered schemas are data: versions of each stream's schema on the ``_doa_schemas`` topic.

As Confluent's ``_schemas`` topic does, every version is a record (key: the stream and the
version, so that compaction of the topic keeps every version; value: JSON with the version,
fingerprint and schema). ``doa run`` registers a topology's schemas and
refuses a change that breaks the stream's compatibility level (``BACKWARD_TRANSITIVE`` unless
the stream declares another: the new schema reads payloads of every registered version), naming
the version and the field; readers decode payloads written with any registered version.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from doa.cluster.admin import SCHEMAS_TOPIC
from doa.cluster.security import kafka_python_options
from doa.errors import CompatibilityError
from doa.topology.topology import Topology
from doa.wire.codec import Codec
from doa.wire.compat import against_history, normalize_level, reading_later
from doa.wire.schema import Schema

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Registered:
    stream: str
    version: int
    schema: Schema
    key: str | None = None


def read_registry(address: str, timeout_s: float = 10.0) -> dict[str, list[Registered]]:
    """Every registered version per stream, oldest first (read up to the topic's end offset,
    which the read stops at without waiting for more)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=address, **kafka_python_options(address),
                             enable_auto_commit=False,
                             consumer_timeout_ms=int(timeout_s * 1000))
    try:
        tp = TopicPartition(SCHEMAS_TOPIC, 0)
        if SCHEMAS_TOPIC not in (consumer.topics() or set()):
            return {}
        consumer.assign([tp])
        end = consumer.end_offsets([tp])[tp]
        consumer.seek_to_beginning(tp)
        out: dict[str, list[Registered]] = {}
        while True:
            # Past the end offset, only what the client holds already: on Apache Kafka the end
            # is the high watermark (exact); on tansu it is the last batch's base + 1, and the
            # fetch that brought that offset brought the whole batch (batches are never split).
            polled = consumer.poll(timeout_ms=int(timeout_s * 1000) if
                                   consumer.position(tp) < end else 0)
            if not polled:
                return out
            for records in polled.values():
                for r in records:
                    entry = json.loads(r.value)
                    versions = out.setdefault(entry["stream"], [])
                    schema = Schema.from_json(entry["schema"])
                    if all(v.schema.fingerprint != schema.fingerprint for v in versions):
                        versions.append(Registered(entry["stream"], entry["version"], schema,
                                                   entry.get("key")))
    finally:
        consumer.close()


def plan_registration(topology: Topology, registered: dict[str, list[Registered]],
                      level: str | None = None) -> list[tuple[str, int, Schema]]:
    """The new versions to register; raise :class:`CompatibilityError` for a breaking change.

    Each stream is checked at its own ``compatibility`` level, or at ``level`` if given.

    Examples
    --------
    >>> import json
    >>> from pathlib import Path
    >>> from tempfile import TemporaryDirectory
    >>> tmp = TemporaryDirectory()
    >>> d = Path(tmp.name)
    >>> def version(fields):
    ...     (d / "t.avsc").write_text(json.dumps({"type": "record", "name": "T",
    ...                                           "fields": fields}))
    ...     t = Topology("x", schemas=d)
    ...     t.stream("s", schema="T")
    ...     return t, t.codec("s").schema
    >>> _, v1 = version([{"name": "n", "type": "long"}])
    >>> _, v2 = version([])
    >>> v3, _ = version([{"name": "n", "type": "string", "default": ""}])
    >>> history = {"s": [Registered("s", 1, v1), Registered("s", 2, v2)]}
    >>> try:
    ...     plan_registration(v3, history)
    ... except CompatibilityError as exc:
    ...     print(exc.level, exc.problems[0].partition(" (")[0].split(": ")[:2])
    BACKWARD_TRANSITIVE ['version 1', "field 'T.n'"]
    >>> [(s, v) for s, v, _ in plan_registration(v3, history, "BACKWARD")]
    [('x.dlq', 1), ('s', 3)]
    >>> tmp.cleanup()
    """
    new: list[tuple[str, int, Schema]] = []
    for s in topology.streams.values():
        schema = topology.codec(s.name).schema
        versions = registered.get(s.name, [])
        stream_level = normalize_level(level or s.compatibility)
        at = next((i for i, v in enumerate(versions)
                   if v.schema.fingerprint == schema.fingerprint), None)
        if at is not None:
            _going_back(s.name, versions, at, stream_level)
            continue  # the latest, or going back to an older one that reads the later ones
        found = against_history([(v.version, v.schema.json) for v in versions], schema.json,
                                stream_level)
        if found:
            raise CompatibilityError(s.name, stream_level, found)
        new.append((s.name, (versions[-1].version + 1) if versions else 1, schema))
    return new


def _going_back(stream: str, versions: list[Registered], at: int, level: str) -> None:
    """Refuse going back to the registered version ``versions[at]`` when it cannot read the
    records of the versions registered after it (which the stream may hold): nodes would
    make them dead letters. Under ``NONE`` anything goes.

    Examples
    --------
    >>> v1 = Schema.from_json({"type": "record", "name": "T",
    ...                        "fields": [{"name": "id", "type": "long"}]})
    >>> v2 = Schema.from_json({"type": "record", "name": "T",
    ...                        "fields": [{"name": "id", "type": "double"}]})
    >>> history = [Registered("s", 1, v1), Registered("s", 2, v2)]
    >>> try:
    ...     _going_back("s", history, 0, "BACKWARD_TRANSITIVE")
    ... except CompatibilityError as exc:
    ...     print(str(exc).split(", whose")[0])
    stream 's': its schema is registered version 1, older than version 2
    >>> _going_back("s", history, 0, "NONE")
    """
    later = versions[at + 1:]
    if not later or level == "NONE":
        return
    found = reading_later([(v.version, v.schema.json) for v in later], versions[at].schema.json)
    if found:
        numbers = ("version " if len(later) == 1 else "versions ") + \
            ", ".join(str(v.version) for v in later)
        raise CompatibilityError(
            stream, level, found,
            what=f"its schema is registered version {versions[at].version}, older than "
                 f"{numbers}, whose records it cannot read",
            fix="; to go back, write a schema that reads them (it registers as a new "
                "version), or declare the stream compatibility='NONE'")


def register(address: str, topology: Topology, level: str | None = None) -> list[str]:
    """Check and register ``topology``'s schemas; give its codecs the registered history.

    ``level`` overrides every stream's own compatibility level.

    Returns the streams that got a new version.
    """
    from kafka import KafkaProducer

    registered = read_registry(address)
    new = plan_registration(topology, registered, level)
    if new:
        producer = KafkaProducer(bootstrap_servers=address, **kafka_python_options(address),
                                 acks="all")
        try:
            for stream, version, schema in new:
                value = json.dumps({"stream": stream, "version": version,
                                    "fingerprint": schema.fingerprint.hex(),
                                    "key": topology.streams[stream].key,
                                    "schema": schema.json}).encode()
                producer.send(SCHEMAS_TOPIC, value=value, partition=0,
                              key=f"{stream}/v{version}".encode())
            producer.flush()
        finally:
            producer.close()
        log.info("registered schema versions: %s", ", ".join(f"{s} v{v}" for s, v, _ in new))
    for stream, versions in registered.items():
        if stream in topology.streams:
            topology.add_history(stream, [v.schema for v in versions])
    return [s for s, _, _ in new]


def is_registered(schema: Schema, versions: Iterable[Registered]) -> bool:
    """Whether ``schema`` is one of a stream's registered ``versions`` (same fingerprint).

    >>> from doa.wire.schema import Schema
    >>> v1 = Schema.from_json({"type": "record", "name": "T", "fields": []})
    >>> v2 = Schema.from_json({"type": "record", "name": "T",
    ...                        "fields": [{"name": "n", "type": "long", "default": 0}]})
    >>> is_registered(v1, [Registered("s", 1, v1)]), is_registered(v2, [Registered("s", 1, v1)])
    (True, False)
    """
    return any(v.schema.fingerprint == schema.fingerprint for v in versions)


def registered_history(address: str, stream: str, known: Collection[bytes],
                       timeout_s: float = 10.0) -> list[Registered]:
    """``stream``'s versions registered on the broker whose fingerprints are not ``known``,
    oldest first (one read of the registry): what a codec that met a payload of an unknown
    version should add to its history (:func:`reread` for nodes,
    :class:`doa.cluster.codecs.RegisteredCodec` for readers)."""
    versions = read_registry(address, timeout_s).get(stream, [])
    return [v for v in versions if v.schema.fingerprint not in known]


def reread(address: str, topology: Topology, stream: str, timeout_s: float = 3.0
           ) -> Codec | None:
    """``stream``'s codec in ``topology`` with every version registered on the broker now
    (:attr:`doa.runtime.runner.NodeRunner.reread`: a version deployed after a node started);
    None when the registry cannot be read within ``timeout_s``."""
    codec = topology.codec(stream)
    known = codec.history.keys() | {codec.schema.fingerprint}
    try:
        new = registered_history(address, stream, known, timeout_s)
    except Exception as exc:
        log.warning("stream %r: a record of a schema version this process does not know; "
                    "reading the registry again failed: %s: %s", stream, type(exc).__name__, exc)
        return None
    if new:
        log.info("stream %r: schema version(s) %s registered after this process started: "
                 "reading them too", stream, ", ".join(f"v{v.version}" for v in new))
        topology.add_history(stream, [v.schema for v in new])
    return topology.codec(stream)
