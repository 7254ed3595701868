"""What the catalog reads from a broker, and nothing else: no topology file, no full scans.

:func:`read_broker` makes one admin client and one consumer (no group) and asks:

- metadata: topics and their partitions; topic configs (``cleanup.policy``), where the
  broker answers (tansu answers none: then the declared configs in the descriptions count);
- offsets: first and end offset of every partition, and the first offset whose timestamp is
  within the last ``window_s`` seconds (``offsets_for_times``), for counts and rates;
- one read loop, from where each part starts to its high watermark: the last ``sample``
  records of every stream partition (their lineage headers name who wrote them), all of
  ``_doa_schemas`` (registered versions), the descriptions and forget records on
  ``_doa_topologies`` and the heartbeats of the last ``heartbeat_window_s`` seconds. The high
  watermarks these fetches return also correct the end offsets of brokers whose ListOffsets
  answer is a lower bound (tansu: the last batch's base offset + 1);
- consumer groups (listed, plus the node groups the descriptions imply) and their committed
  offsets.

Anything the broker refuses becomes a line in :attr:`BrokerView.warnings`, not an error.
:func:`read_topologies` reads ``_doa_topologies`` alone, the same way (what ``doa run`` needs
to compare a topology with the others, :mod:`doa.catalog.writers`).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from doa.catalog.describe import DESCRIPTIONS, HEARTBEATS, TOPIC
from doa.cluster.admin import SCHEMAS_TOPIC, internal_topic
from doa.events import lineage_of

log = logging.getLogger(__name__)

TP = tuple[str, int]
NO_HEADER = "(no doa header)"
HEADERLESS = "records without a doa header"  # NO_HEADER's publisher, as the catalog shows it


@dataclass
class BrokerView:
    """Raw facts read from a broker; :func:`doa.catalog.collect.assemble` makes the catalog."""

    broker: str
    now_ms: int
    window_s: float = 60.0
    partitions: dict[str, int] = field(default_factory=dict)
    configs: dict[str, dict[str, str]] = field(default_factory=dict)
    begin: dict[TP, int] = field(default_factory=dict)
    end: dict[TP, int] = field(default_factory=dict)
    since: dict[TP, int | None] = field(default_factory=dict)  # None: nothing in the window
    writers: dict[str, Counter[str]] = field(default_factory=dict)  # header names, sampled
    last_timestamp: dict[str, int] = field(default_factory=dict)
    groups: dict[str, dict[TP, int]] = field(default_factory=dict)  # committed offsets
    registry: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    descriptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # by process key
    heartbeats: dict[str, dict[str, Any]] = field(default_factory=dict)  # latest, by key
    forgotten: dict[str, set[str]] = field(default_factory=dict)  # topology -> process keys
    warnings: list[str] = field(default_factory=list)

    def described(self) -> dict[str, dict[str, Any]]:
        """The descriptions, by process key, of the processes no forget record names
        (:mod:`doa.catalog.forget`): what the catalog and the writer check read.

        >>> v = BrokerView("b:9092", 0, descriptions={"t/h/1": {"topology": "t"},
        ...                                           "t/h/2": {"topology": "t"}},
        ...                forgotten={"t": {"t/h/1"}})
        >>> list(v.described())
        ['t/h/2']
        """
        return {k: d for k, d in self.descriptions.items()
                if k not in self.forgotten.get(d.get("topology") or "", ())}


def read_broker(address: str, *, sample: int = 64, window_s: float = 60.0,
                heartbeat_window_s: float = 600.0, timeout_s: float = 10.0) -> BrokerView:
    """Read what the catalog shows from the broker at ``address``."""
    from kafka import KafkaAdminClient, KafkaConsumer

    from doa.cluster.security import kafka_python_options

    options = kafka_python_options(address)
    view = BrokerView(address, int(time.time() * 1000), window_s)
    admin = KafkaAdminClient(bootstrap_servers=address, **options,
                             request_timeout_ms=int(timeout_s * 1000))
    consumer = KafkaConsumer(bootstrap_servers=address, **options, enable_auto_commit=False,
                             request_timeout_ms=int(timeout_s * 1000) + 1000,
                             max_poll_records=5000)
    try:
        _metadata(view, admin, consumer)
        _offsets(view, consumer, timeout_s)
        starts = _read_starts(view, consumer, sample, heartbeat_window_s)
        _read(view, consumer, starts, timeout_s)
        _groups(view, admin)
    finally:
        consumer.close()
        admin.close()
    return view


def read_topologies(address: str, *, heartbeat_window_s: float = 600.0,
                    timeout_s: float = 5.0) -> BrokerView:
    """Read only ``_doa_topologies`` (every description, the recent heartbeats) from the
    broker at ``address``: what :mod:`doa.catalog.writers` compares a topology with.

    One consumer, no admin client, no other topic; a broker without the topic yields an
    empty view (the topic is not created by asking).
    """
    from kafka import KafkaConsumer, TopicPartition

    from doa.cluster.security import kafka_python_options

    view = BrokerView(address, int(time.time() * 1000))
    consumer = KafkaConsumer(bootstrap_servers=address, **kafka_python_options(address),
                             enable_auto_commit=False,
                             request_timeout_ms=int(timeout_s * 1000) + 1000,
                             max_poll_records=5000)
    try:
        if TOPIC not in (consumer.topics() or set()):
            return view
        tps = [TopicPartition(TOPIC, p) for p in sorted(consumer.partitions_for_topic(TOPIC)
                                                        or ())]
        view.partitions[TOPIC] = len(tps)
        ms = int(timeout_s * 1000)
        view.begin = {(tp.topic, tp.partition): o for tp, o in
                      consumer.beginning_offsets(tps, timeout_ms=ms).items()}
        view.end = {(tp.topic, tp.partition): o for tp, o in
                    consumer.end_offsets(tps, timeout_ms=ms).items()}
        _read(view, consumer, _read_starts(view, consumer, 0, heartbeat_window_s), timeout_s)
    finally:
        consumer.close()
    return view


def _metadata(view: BrokerView, admin: Any, consumer: Any) -> None:
    from kafka.admin import ConfigResource, ConfigResourceType

    for topic in sorted(consumer.topics()):
        view.partitions[topic] = len(consumer.partitions_for_topic(topic) or ())
    try:
        answer = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, t)
                                         for t in view.partitions])
        for name, configs in (answer.get("topic") or {}).items():
            view.configs[name] = {k: str(v.get("value")) for k, v in configs.items()}
    except Exception as exc:
        view.warnings.append(f"topic configs: {type(exc).__name__}: {exc}")


def _offsets(view: BrokerView, consumer: Any, timeout_s: float) -> None:
    from kafka import TopicPartition

    tps = [TopicPartition(t, p) for t, n in view.partitions.items() for p in range(n)]
    if not tps:
        return
    ms = int(timeout_s * 1000)
    view.begin = {(tp.topic, tp.partition): o for tp, o in
                  consumer.beginning_offsets(tps, timeout_ms=ms).items()}
    view.end = {(tp.topic, tp.partition): o for tp, o in
                consumer.end_offsets(tps, timeout_ms=ms).items()}
    since = view.now_ms - int(view.window_s * 1000)
    try:
        found = consumer.offsets_for_times({tp: since for tp in tps}, timeout_ms=ms)
    except Exception as exc:
        view.warnings.append(f"offsets by time: {type(exc).__name__}: {exc}")
        return
    for tp, hit in found.items():
        # Kafka answers None when no record is that recent; tansu a timestamp of -1
        view.since[(tp.topic, tp.partition)] = (
            None if hit is None or hit.timestamp < 0 else int(hit.offset))


def _read_starts(view: BrokerView, consumer: Any, sample: int,
                 heartbeat_window_s: float) -> dict[TP, int]:
    """Where the read loop starts in each partition it reads (only partitions with data)."""
    starts: dict[TP, int] = {}
    for tp, end in view.end.items():
        begin = view.begin.get(tp, 0)
        if end <= begin:
            continue
        topic, part = tp
        if topic == SCHEMAS_TOPIC or (topic == TOPIC and part == DESCRIPTIONS):
            starts[tp] = begin
        elif topic == TOPIC and part == HEARTBEATS:
            starts[tp] = _heartbeats_start(view, consumer, tp, heartbeat_window_s)
        elif not internal_topic(topic) and sample > 0:
            starts[tp] = max(begin, end - sample)
    return starts


def _heartbeats_start(view: BrokerView, consumer: Any, tp: TP, window_s: float) -> int:
    from kafka import TopicPartition

    part = TopicPartition(*tp)
    try:
        hit = consumer.offsets_for_times({part: view.now_ms - int(window_s * 1000)})[part]
    except Exception:
        return view.begin.get(tp, 0)
    if hit is None or hit.timestamp < 0:
        return view.end[tp]  # nothing that recent: still read the last batch
    return int(hit.offset)


def _read(view: BrokerView, consumer: Any, starts: dict[TP, int], timeout_s: float) -> None:
    """Read every partition of ``starts`` from its start to its high watermark."""
    from kafka import TopicPartition

    tps = {TopicPartition(*tp): start for tp, start in starts.items()}
    if not tps:
        return
    consumer.assign(list(tps))
    for tp, start in tps.items():
        consumer.seek(tp, start)
    pending = set(tps)
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            for r in records:
                _take(view, r)
            key = (tp.topic, tp.partition)
            view.end[key] = max(view.end.get(key, 0), records[-1].offset + 1)
        for tp in list(pending):
            high = consumer.highwater(tp)
            if high is not None:
                key = (tp.topic, tp.partition)
                view.end[key] = max(view.end.get(key, 0), high)
                if consumer.position(tp) >= high:
                    pending.discard(tp)
    if pending:
        view.warnings.append(f"read timed out after {timeout_s:g} s on "
                             + ", ".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in pending)))


def _take(view: BrokerView, r: Any) -> None:
    if r.topic == SCHEMAS_TOPIC:
        _registered(view, r.value)
    elif r.topic == TOPIC:
        _process_record(view, r.key, r.value)
    else:
        try:
            lineage = lineage_of(r.headers)
        except Exception:
            lineage = None
        name = lineage.node if lineage is not None else NO_HEADER
        view.writers.setdefault(r.topic, Counter())[name] += 1
        if r.timestamp is not None and r.timestamp >= 0:
            view.last_timestamp[r.topic] = max(view.last_timestamp.get(r.topic, 0), r.timestamp)


def _registered(view: BrokerView, value: bytes | None) -> None:
    try:
        entry = json.loads(value or b"")
        versions = view.registry.setdefault(entry["stream"], [])
    except (ValueError, KeyError, TypeError):
        return
    if all(v.get("fingerprint") != entry.get("fingerprint") for v in versions):
        versions.append(entry)


def _process_record(view: BrokerView, key: bytes | None, value: bytes | None) -> None:
    if key is None:
        return
    k = key.decode(errors="replace")
    if value is None:  # a tombstone: the process is forgotten
        view.descriptions.pop(k, None)
        view.heartbeats.pop(k, None)
        return
    try:
        record = json.loads(value)
    except ValueError:
        return
    if record.get("type") == "description":
        view.descriptions[k] = record
    elif record.get("type") == "heartbeat":
        view.heartbeats[k] = record
    elif record.get("type") == "forgotten" and isinstance(record.get("topology"), str):
        view.forgotten.setdefault(record["topology"], set()).update(
            str(p) for p in record.get("processes") or ())


def _groups(view: BrokerView, admin: Any) -> None:
    """Consumer groups with committed offsets: listed ones and the nodes' groups."""
    names: set[str] = set()
    try:
        names.update(g["group_id"] for g in admin.list_groups())
    except Exception as exc:
        view.warnings.append(f"consumer groups: {type(exc).__name__}: {exc}")
    names.update(node_groups(view.described().values()))
    for group in sorted(names):
        try:
            offsets = admin.list_group_offsets({group: None}).get(group, {})
        except Exception as exc:
            view.warnings.append(f"offsets of group {group!r}: {type(exc).__name__}: {exc}")
            continue
        committed = {(tp.topic, tp.partition): int(m.offset) for tp, m in offsets.items()
                     if m is not None and m.offset >= 0}
        if committed:
            view.groups[group] = committed


def node_groups(descriptions: Iterable[dict[str, Any]]) -> set[str]:
    """The consumer groups the described processes' nodes use (either engine).

    >>> sorted(node_groups([{"topology": "t", "runs": ["a"]}]))
    ['t.a', 't.a.faust']
    """
    out: set[str] = set()
    for d in descriptions:
        for node in d.get("runs") or ():
            out.update((f"{d['topology']}.{node}", f"{d['topology']}.{node}.faust"))
    return out
