"""Read a topology's dead letters, and replay them to their streams after a fix.

Replay is bounded and loses nothing:

- it reads the dead-letter stream's end offsets first and replays only the letters that exist
  when it starts, then stops (a replayed record that fails again becomes a new letter beyond
  that end, and a letter whose original record was already replayed by this run is skipped);
- a replayed record is the original as it was read: its key, its value and its timestamp
  (``record_timestamp``: outputs carry event time, so a timestamp merge downstream puts it
  where the original was, not at the time of the replay);
- each replayed record carries a ``doa.replay`` header (:func:`pack_replay`: the attempt,
  where the record was first read, and the node whose letter it is); a node that dead-letters
  it again copies that into the new letter's ``attempt`` and ``original`` fields
  (:func:`replay_fields`);
- a replayed record is for that node only: every other node reading the stream skips it (it
  got the original already; both engines, counted in the batch's ``skipped``), and so does a
  :class:`doa.subscriber.Subscriber`. A reader outside doa sees it, with the header naming the
  node (:func:`replay_node`). A header written before doa named the node is for every reader.
  A letter whose node is no longer in the topology, or no longer reads the stream, is skipped
  (its replay would reach no node);
- its lineage header (version 2) names its letter by id and coordinates, and its id is
  :func:`replay_id` of the letter's place: ``doa lineage`` walks replayed record -> dead letter
  -> original record, and from a dead letter forward to its replay;
- a letter whose bytes are not a record of its stream (as the topology's schema, or a version
  registered for the stream, reads them: :class:`doa.dlq_read.Readers`) is not re-published:
  its node would only dead-letter it again, a new letter on every replay. It stays in the
  dead-letter stream, and ``doa dlq`` lists it as undecodable: the fix is the producer's.
  The replay passes it (``ReplayReport.undecodable``) as it passes a letter it skips;
- nor is a tombstone's letter (its record had no value: the letter's ``tombstone`` field says
  so, :func:`was_tombstone`): no doa node takes a null value, so it too would only come back
  as a new letter on every replay. It stays, listed as a tombstone
  (``ReplayReport.tombstones``; both kinds: :meth:`doa.dlq_read.Readers.kept`);
- ``replay(..., node=NAME)`` replays that node's letters only;
- the consumer group ``TOPOLOGY.dlq-replay`` (``TOPOLOGY.dlq-replay.NODE`` for a replay of one
  node) remembers what was replayed (:mod:`doa.dlq_books`: runs of one node and of all mix,
  each letter replayed once), and its offsets are committed only up to the first letter whose
  re-publish the broker did not acknowledge: a failed letter is reported with its
  coordinates and is replayed again by the next run.

Examples
--------
>>> header = pack_replay(Replay(1, "readings", 2, 40, "score"))
>>> replay_fields([(REPLAY_HEADER, header)])["original"]
{'stream': 'readings', 'partition': 2, 'offset': 40}
>>> replay_node([(REPLAY_HEADER, header)])
b'score'
>>> replay_id("sensors.dlq", 0, 7) == replay_id("sensors.dlq", 0, 7)
True
>>> replay_id("sensors.dlq", 0, 7) == replay_id("sensors.dlq", 0, 8)
False
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

from doa.cluster.fetchwait import Poll
from doa.cluster.reach import check_reachable
from doa.cluster.security import kafka_python_options
from doa.dlq_books import Books, read_books, replay_group
from doa.dlq_read import (
    TOMBSTONE,
    Readers,
    dead_letters,
    replayed_up_to,
    undecodable,
    was_tombstone,
    with_history,
)
from doa.errors import DoaError, first_line
from doa.events import (
    LINEAGE_HEADER,
    REPLAY_HEADER,
    Coordinates,
    Event,
    Lineage,
    Replay,
    output_id,
    pack_lineage,
    pack_replay,
    replay_fields,
    replay_node,
    unpack_replay,
)
from doa.topology.topology import Topology

__all__ = ["REPLAY_HEADER", "REPLAY_NODE", "Replay", "ReplayReport", "dead_letters",
           "pack_replay", "replay", "replay_fields", "replay_group", "replay_id", "replay_node",
           "replayed_up_to", "undecodable", "unpack_replay", "was_tombstone"]

REPLAY_NODE = "doa-dlq-replay"  # the node a replayed record's lineage header names


def replay_id(dlq: str, partition: int, offset: int) -> bytes:
    """The event id of the record replayed from the letter at ``dlq/partition@offset``.

    Stable: replaying the same letter twice writes the same id (consumers de-duplicate).
    """
    letter = Event({}, stream=dlq, partition=partition, offset=offset, timestamp=0)
    return output_id(REPLAY_NODE, letter, 0)


@dataclass
class ReplayReport:
    """What one :func:`replay` did: counts per stream, one line per letter not replayed, and
    the letters passed over: ``undecodable`` (their bytes are not a record of their stream),
    ``tombstones`` (their record had no value, which no doa node takes), ``before`` (replayed
    by an earlier run) and ``others`` (another node's, in a run of one)."""

    replayed: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    undecodable: list[str] = field(default_factory=list)
    tombstones: list[str] = field(default_factory=list)
    before: int = 0
    others: int = 0

    @property
    def total(self) -> int:
        return sum(self.replayed.values())


@dataclass
class _Sent:
    tp: Any  # the letter's TopicPartition
    offset: int
    where: str
    stream: str
    future: Any


@dataclass
class _Run:
    """One replay's scope and state: the node whose letters it replays (None: all), the
    bookkeeping it started from, and each stream's reader."""

    topology: Topology
    readers: Readers
    books: Books
    node: str | None = None
    report: ReplayReport = field(default_factory=ReplayReport)
    seen: set[tuple[str, int, int]] = field(default_factory=set)


def replay(address: str, topology: Topology, *, node: str | None = None,
           timeout_s: float = 60.0) -> ReplayReport:
    """Re-publish the dead letters not replayed before to their streams (``node``'s only, if
    given); see the module doc.

    ``timeout_s`` bounds reading the letters and waiting for the broker's acknowledgements.
    """
    from kafka import KafkaConsumer, KafkaProducer

    check_reachable(address)
    if node is not None and node not in topology.nodes:
        raise DoaError(f"--node {node!r}: topology {topology.name!r} has no such node (its "
                       f"nodes: {', '.join(sorted(topology.nodes))})")
    with_history(address, topology)
    dlq = topology.dead_letters.name
    options = kafka_python_options(address)
    consumer = KafkaConsumer(bootstrap_servers=address, **options, enable_auto_commit=False,
                             group_id=replay_group(topology, node), fetch_max_wait_ms=10)
    producer = KafkaProducer(bootstrap_servers=address, **options, acks="all", linger_ms=5,
                             client_id="doa-dlq-replay")
    # a dead-letter partition of thousands of one-record batches (each letter written as it
    # failed) answers a short fetch on the embedded broker with nothing: the wait stretches
    poll = Poll(consumer, floor_ms=200)
    try:
        tps = _partitions(consumer, address, dlq)  # none: one line, before the bookkeeping
        run = _Run(topology, Readers(topology, address),
                   read_books(address, dlq, topology.name, topology.nodes), node)
        starts, ends = _bounds(poll, tps, run, timeout_s)
        sent, commit = _republish(poll, producer, run, starts, ends, timeout_s)
        _settle(producer, sent, commit, run.report, timeout_s)
        if commit:
            from kafka.structs import OffsetAndMetadata

            consumer.commit({tp: OffsetAndMetadata(o, "", -1) for tp, o in commit.items()})
    finally:
        producer.close(timeout=2)
        consumer.close(autocommit=False, timeout_ms=2000)
    return run.report


def _partitions(consumer: Any, address: str, dlq: str) -> list[Any]:
    """The partitions of ``dlq``; a one-line error if it does not exist."""
    from kafka import TopicPartition

    tps = [TopicPartition(dlq, p) for p in sorted(consumer.partitions_for_topic(dlq) or [])]
    if not tps:  # as the listing says it (doa.dlq_read.letters)
        raise DoaError(f"stream {dlq!r} does not exist on {address} yet (doa deploy or "
                       "doa run creates a topology's streams)")
    return tps


def _bounds(poll: Poll, tps: list[Any], run: _Run,
            timeout_s: float) -> tuple[dict[Any, int], dict[Any, int]]:
    """Per partition ``tps`` of the dead-letter stream: where this run starts
    (:meth:`Books.start`), and the end when it starts.

    The broker's end offset can be a lower bound (tansu answers the base offset of the last
    batch + 1), so the batch at end - 1 is read, before anything is re-published, to find the
    last letter that exists now.
    """
    consumer = poll.consumer
    dlq = run.topology.dead_letters.name
    consumer.assign(tps)
    first = consumer.beginning_offsets(tps)
    ends = consumer.end_offsets(tps)
    starts = {tp: max(run.books.start(tp.partition, run.node), first[tp]) for tp in tps}
    # every partition that has letters: its last batch may reach past a start beyond the end
    probe = [tp for tp in tps if ends[tp] > first[tp]]
    for tp in probe:
        consumer.seek(tp, ends[tp] - 1)
    deadline = time.monotonic() + timeout_s
    while probe and time.monotonic() < deadline:
        for tp, messages in poll().items():
            if tp in probe and messages:
                ends[tp] = max(ends[tp], messages[-1].offset + 1)
                probe.remove(tp)
                consumer.pause(tp)
    if probe:
        raise DoaError(f"dead-letter stream {dlq!r}: could not read partitions "
                       f"{sorted(tp.partition for tp in probe)} in {timeout_s:g} s")
    consumer.resume(*tps)
    for tp in tps:
        consumer.seek(tp, starts[tp])
    return starts, ends


def _republish(poll: Poll, producer: Any, run: _Run, starts: dict[Any, int],
               ends: dict[Any, int], timeout_s: float) -> tuple[list[_Sent], dict[Any, int]]:
    """Send every letter in [start, end) of each partition that is the run's to send; the
    sends, and how far each partition was read (what may be committed if every send before
    it is acknowledged)."""
    dlq = run.topology.dead_letters.name
    codec = run.topology.codec(dlq)
    consumer = poll.consumer
    pending = {tp for tp in ends if ends[tp] > starts[tp]}
    done: dict[Any, int] = {}
    sent: list[_Sent] = []
    deadline = time.monotonic() + timeout_s
    for tp in set(ends) - pending:
        consumer.pause(tp)
    while pending:
        if time.monotonic() > deadline:
            raise DoaError(f"dead-letter stream {dlq!r}: letters still unread after "
                           f"{timeout_s:g} s; nothing was committed")
        for tp, messages in poll().items():
            for m in messages:
                if tp not in pending or m.offset >= ends[tp]:
                    break
                one = _one(producer, run, tp, m, codec)
                if one is not None:
                    sent.append(one)
                done[tp] = m.offset + 1
                if done[tp] >= ends[tp]:
                    pending.discard(tp)
                    consumer.pause(tp)
    return sent, done


def _one(producer: Any, run: _Run, tp: Any, m: Any, codec: Any) -> _Sent | None:
    """Letter ``m``: passed over (another node's, replayed before, a tombstone, or not a record
    of its stream), or re-published by :func:`_send_one`."""
    report = run.report
    where = f"{m.topic}/{m.partition}@{m.offset}"
    try:
        letter = codec.decode(m.value)
    except Exception as exc:
        report.skipped.append(f"{where}: cannot decode the letter ({exc})")
        return None
    node = str(letter.get("node") or "")
    if run.node is not None and node != run.node:
        report.others += 1
        return None
    if run.books.replayed(m.partition, m.offset, node):
        report.before += 1
        return None
    kept = run.readers.kept(letter)
    if kept is not None:
        kind, why = kept
        (report.tombstones if kind == TOMBSTONE else report.undecodable).append(
            f"{where}: node {node!r}: {why}")
        return None
    return _send_one(producer, run.topology, tp, m, letter, where, run.seen, report)


def _send_one(producer: Any, topology: Topology, tp: Any, m: Any, letter: dict[str, Any],
              where: str, seen: set[tuple[str, int, int]],
              report: ReplayReport) -> _Sent | None:
    """Re-publish one letter's raw record to its stream, or say why it is skipped."""
    stream = letter["stream"]
    spec = topology.streams.get(stream)
    if spec is None:
        report.skipped.append(f"{where}: stream {stream!r} is not declared by topology "
                              f"{topology.name!r}")
        return None
    node = str(letter.get("node") or "")
    reader = topology.nodes.get(node)
    if reader is None or stream not in reader.reads:
        why = f"does not read {stream!r}" if reader else f"is not in {topology.name!r}"
        report.skipped.append(f"{where}: node {node!r} {why}: its replay would reach no node")
        return None
    original = letter.get("original") or {"stream": stream, "partition": letter["partition"],
                                          "offset": letter["offset"]}
    first = (original["stream"], original["partition"], original["offset"])
    if first in seen:
        report.skipped.append(f"{where}: {_at(first)} was already replayed by this run")
        return None
    seen.add(first)
    attempt = int(letter.get("attempt") or 0) + 1
    raw: bytes = letter["raw"]  # never a tombstone's (Readers.kept): no node takes a null
    fingerprint = raw[2:10] if raw and raw[:2] == b"\xc3\x01" and len(raw) >= 10 else b"\0" * 8
    lineage = Lineage(replay_id(m.topic, m.partition, m.offset), REPLAY_NODE, fingerprint,
                      (_letter_id(m),), 0, (Coordinates(m.topic, m.partition, m.offset),))
    headers = [(LINEAGE_HEADER, pack_lineage(lineage)),
               (REPLAY_HEADER, pack_replay(Replay(attempt, *first, node)))]
    partition = letter["partition"] if 0 <= letter["partition"] < spec.partitions else None
    try:
        future = producer.send(stream, value=raw, key=letter["key"], partition=partition,
                               headers=headers, timestamp_ms=_event_time(letter))
    except Exception as exc:  # e.g. no metadata for the stream in time: a failed send
        report.failed.append(f"not replayed: {where} ({_at(first)}, attempt {attempt}): "
                             f"{first_line(exc)}")
        future = None
    return _Sent(tp, m.offset, f"{where} ({_at(first)}, attempt {attempt})", stream, future)


def _settle(producer: Any, sent: list[_Sent], commit: dict[Any, int], report: ReplayReport,
            timeout_s: float) -> None:
    """Wait for the acknowledgements; count them, report the failures, and pull each
    partition's commit back to its first letter that was not acknowledged."""
    from kafka.errors import KafkaTimeoutError

    with contextlib.suppress(KafkaTimeoutError):  # the sends not done are failures below
        producer.flush(timeout=timeout_s)
    for s in sent:
        f = s.future
        if f is not None and f.is_done and not f.failed():
            report.replayed[s.stream] = report.replayed.get(s.stream, 0) + 1
            continue
        if f is not None:
            why = first_line(f.exception) if f.is_done else f"no acknowledgement in {timeout_s:g} s"
            report.failed.append(f"not replayed: {s.where}: {why}")
        commit[s.tp] = min(commit[s.tp], s.offset)


def _event_time(letter: dict[str, Any]) -> int | None:
    """The original record's timestamp (None, the producer's clock, if it had none: -1)."""
    ts = int(letter["record_timestamp"])
    return ts if ts >= 0 else None


def _at(coordinates: tuple[str, int, int]) -> str:
    stream, partition, offset = coordinates
    return f"{stream}/{partition}@{offset}"


def _letter_id(m: Any) -> bytes:
    """The letter's event id: its lineage header's, else derived from its coordinates."""
    from doa.events import coordinate_id, header_id

    try:
        found = header_id(m.headers)
    except ValueError:
        found = None
    return found or coordinate_id(m.topic, m.partition, m.offset)
