"""Read a topology's dead letters: all those that exist when the read starts, then stop.

:func:`letters` reads the dead-letter stream from its beginning up to its end offsets as the
read starts, without waiting for more: ``doa dlq`` lists 4 letters in the time of one fetch,
where a read that stops after 2 s without a record (:func:`dead_letters`) took those 2 s on
top. The broker's end offset can be a lower bound (tansu answers the base offset of the last
batch + 1): :meth:`doa.collect.read.Reader.ends` takes the end a fetch reports instead.

Examples
--------
>>> bad = RecordError("sensors.dlq", 0, 7, "corrupt", "not a DeadLetter")
>>> letter = Event({"node": "score"}, stream="sensors.dlq", partition=0, offset=8, timestamp=0)
>>> letter_node(bad), letter_node(letter)
('', 'score')
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from doa.cluster.security import kafka_python_options
from doa.dlq_books import replay_group
from doa.errors import DoaError, first_line
from doa.events import Event, replay_node
from doa.subscriber import RecordError, event_at
from doa.topology.topology import Topology

if TYPE_CHECKING:
    from doa.wire.codec import Codec

__all__ = ["TOMBSTONE", "UNDECODABLE", "Readers", "dead_letters", "letter_node", "letters",
           "replayed_up_to", "tombstone_reason", "undecodable", "was_tombstone"]

_TOMBSTONE = "record has no value (a tombstone)"  # what the runtime says of a null value
UNDECODABLE = "undecodable"  # the kinds of letter a replay never sends (Readers.kept)
TOMBSTONE = "tombstone"


def letters(address: str, topology: Topology, *,
            timeout_s: float = 60.0) -> Iterator[Event | RecordError]:
    """The dead-letter envelopes of ``topology`` that exist now, in partition order; a letter
    that cannot be decoded comes as a :class:`doa.client.RecordError`.

    A dead-letter stream that does not exist is a :class:`DoaError` before anything is read;
    ``timeout_s`` bounds the read (a broker that holds back letters it has). The read is
    :class:`doa.collect.read.Reader`'s: to the ends each partition had when it began.
    """
    from doa.cluster.codecs import resolve_codec
    from doa.collect.read import Reader

    dlq = topology.dead_letters.name
    codec, _ = resolve_codec(dlq, topology, address)  # an older version: read when met
    with Reader(address, timeout_s=timeout_s) as reader:
        try:
            reader.partitions(dlq)
        except DoaError:  # as doa.client.Subscriber says it
            raise DoaError(f"stream {dlq!r} does not exist on {address} yet (doa deploy or "
                           "doa run creates a topology's streams)") from None
        for p, (begin, end) in sorted(reader.ends(dlq).items()):
            for batch in reader.batches(dlq, p, begin, end):
                yield from _decoded(batch, codec)


def _decoded(messages: Iterable[Any], codec: Codec) -> Iterator[Event | RecordError]:
    for m in messages:
        if m.headers and replay_node(m.headers) is not None:
            continue  # a replay is never written to a dead-letter stream: as a Subscriber
        try:
            event: Event | RecordError = event_at(codec, m)
        except RecordError as error:
            event = error
        yield event


def letter_node(letter: Event | RecordError) -> str:
    """The node whose letter it is ('' for a letter that cannot be decoded)."""
    return "" if isinstance(letter, RecordError) else str(letter.get("node") or "")


def dead_letters(address: str, topology: Topology, *, group: str | None = None,
                 idle_s: float = 2.0) -> Iterator[Event | RecordError]:
    """The dead-letter envelopes of ``topology`` (from the group's position, or all), until
    none came for ``idle_s``; a letter that cannot be decoded comes as a
    :class:`doa.client.RecordError`. :func:`letters` reads those that exist, without waiting.

    A dead-letter stream that does not exist is a :class:`DoaError` at once, not when the
    letters are first read.
    """
    from doa.client import Subscriber

    with_history(address, topology)
    sub = Subscriber([topology.dead_letters.name], broker=address, topology=topology,
                     group=group, from_beginning=True, idle_timeout_s=idle_s, on_error="yield")
    return _read(sub)


def replayed_up_to(address: str, topology: Topology) -> dict[int, int]:
    """Per partition of the dead-letter stream, the offset up to which :func:`doa.dlq.replay`
    of every node has re-published its letters (the replay group's committed offsets; a letter
    at or past it is not replayed by it, a partition missing: none of it). A replay of one
    node marks in a group of its own: :func:`doa.dlq_books.read_books` reads both."""
    from kafka import KafkaConsumer, TopicPartition

    dlq = topology.dead_letters.name
    consumer = KafkaConsumer(bootstrap_servers=address, **kafka_python_options(address),
                             enable_auto_commit=False, group_id=replay_group(topology.name))
    try:
        parts = sorted(consumer.partitions_for_topic(dlq) or [])
        done = {p: consumer.committed(TopicPartition(dlq, p)) for p in parts}
    finally:
        consumer.close(autocommit=False)
    return {p: o for p, o in done.items() if o is not None}


def _read(sub: Any) -> Iterator[Event | RecordError]:
    with sub:
        yield from sub


def with_history(address: str, topology: Topology) -> None:
    """Let the topology decode letters written with older registered DeadLetter versions."""
    from doa.cluster.registry import read_registry

    name = topology.dead_letters.name
    versions = read_registry(address).get(name, [])
    if versions:
        topology.add_history(name, [v.schema for v in versions])


class Readers:
    """Each stream of ``topology`` read as its nodes read it (its registered versions too),
    resolved when a letter first needs it: :meth:`kept` tells a letter whose replay would only
    be dead-lettered again (a tombstone, or bytes that are no record: :meth:`undecodable`)."""

    def __init__(self, topology: Topology, address: str) -> None:
        self.topology = topology
        self.address = address
        self._codecs: dict[str, Codec] = {}

    def undecodable(self, letter: Mapping[str, Any]) -> str | None:
        """Why ``letter``'s bytes are not a record of its stream (None: they are, or it is a
        tombstone: :meth:`kept` says so, or a stream the topology does not declare: replay says
        so itself)."""
        from doa.cluster.codecs import resolve_codec

        stream = str(letter["stream"])
        if stream not in self.topology.streams or was_tombstone(letter):
            return None
        if stream not in self._codecs:
            self._codecs[stream] = resolve_codec(stream, self.topology, self.address)[0]
        return undecodable(letter, self._codecs[stream])

    def kept(self, letter: Mapping[str, Any]) -> tuple[str, str] | None:
        """Why a replay never sends ``letter`` (its node would only dead-letter it again, one
        more letter on every replay): ``(kind, why)``, the kind :data:`TOMBSTONE` (its record
        had no value: :func:`tombstone_reason`) or :data:`UNDECODABLE` (:meth:`undecodable`);
        None: a replay may send it."""
        if was_tombstone(letter):
            return TOMBSTONE, tombstone_reason(letter)
        why = self.undecodable(letter)
        return None if why is None else (UNDECODABLE, why)


def tombstone_reason(letter: Mapping[str, Any]) -> str:
    """Why a tombstone's letter is not replayed: no doa node takes a null value (each
    dead-letters one), so its replay would only come back as one more letter.

    >>> print(tombstone_reason({"stream": "events"}))
    its record of stream 'events' has no value (a tombstone): doa nodes take no null values, \
a replay would only dead-letter it again
    """
    return (f"its record of stream {str(letter['stream'])!r} has no value (a tombstone): doa "
            "nodes take no null values, a replay would only dead-letter it again")


def undecodable(letter: Mapping[str, Any], codec: Any) -> str | None:
    """Why ``letter``'s bytes are not a record of its stream as ``codec`` reads it; None if
    they are.

    >>> class Codec:
    ...     def decode(self, raw):
    ...         if raw[:2] != b"\\xc3\\x01":
    ...             raise ValueError(f"no single-object marker: starts with {raw[:2].hex()!r}")
    ...         return {}
    >>> print(undecodable({"stream": "events", "raw": b"\\x00garbage"}, Codec()))
    its bytes are not a record of stream 'events' (ValueError: no single-object marker: \
starts with '0067'): fix the producer
    >>> undecodable({"stream": "events", "raw": b"\\xc3\\x01..."}, Codec()) is None
    True
    """
    try:
        codec.decode(letter["raw"])
    except Exception as exc:
        why = first_line(exc)
        return (f"its bytes are not a record of stream {letter['stream']!r} ("
                + (why if ": " in why and why.split(": ")[0].isidentifier()
                   else f"{type(exc).__name__}: {why}") + "): fix the producer")
    return None


def was_tombstone(letter: Mapping[str, Any]) -> bool:
    """Whether a letter's record had no value (null), not an empty one.

    The letter's ``raw`` is bytes either way (``b""``); its ``tombstone`` field says which.
    A letter written before the field existed reads it as null (schema resolution gives the
    default): for those, the runtime dead-lettered a null value, and only a null value, as a
    ``DoaError`` saying it is a tombstone (an empty value is a ``DecodeError/truncated``).

    >>> was_tombstone({"raw": b"", "error_type": "ValueError", "message": "...",
    ...                "tombstone": True})
    True
    >>> was_tombstone({"raw": b"", "error_type": "DecodeError/truncated", "message": "...",
    ...                "tombstone": False})
    False

    A letter written before (the field null, or missing):

    >>> was_tombstone({"raw": b"", "error_type": "DoaError", "tombstone": None,
    ...                "message": "stream 'events': record has no value (a tombstone)"})
    True
    >>> was_tombstone({"raw": b"", "error_type": "DecodeError/truncated", "message": "..."})
    False
    """
    flag = letter.get("tombstone")
    if flag is not None:
        return bool(flag)
    return (letter["raw"] == b"" and letter["error_type"] == "DoaError"
            and str(letter["message"]).endswith(_TOMBSTONE))
