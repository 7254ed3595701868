"""Topics a topology needs, creating them on a broker (aiokafka's admin client), growing them.

Besides its streams, a topology has one state topic per node (``TOPOLOGY.NODE.state``, as many
partitions as the node's input) and the shared ``_doa_schemas`` topic of registered schema
versions. Streams keep their records forever unless their ``config`` sets ``retention.ms``;
state and schema topics are compacted. A stream's topic must have exactly its declared
partitions (:attr:`TopicSpec.exact`): a node reading more would be assigned partitions it has
no state partition for, and keyed writers would disagree on where a key's records go.

Examples
--------
>>> from doa import Topology
>>> t = Topology("t")
>>> _ = t.stream("events", schema="doa.DeadLetter")
>>> _ = t.stream("recent", schema="doa.DeadLetter", config={"retention.ms": "3600000"})
>>> {s.name: s.config for s in topology_topics(t) if s.name in ("events", "recent")}
{'events': {'retention.ms': '-1'}, 'recent': {'retention.ms': '3600000'}}
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from doa.cluster.security import aiokafka_options
from doa.local.embedded import BrokerError
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

SCHEMAS_TOPIC = "_doa_schemas"
COMPACT = {"cleanup.policy": "compact"}
# A stream is the system of record: kept until its owner says otherwise (a stream's ``config``
# may set ``retention.ms``). Kafka's default (7 days, by record timestamp) would delete replays
# and lineage after a week, and at once the records whose event time is older than that (a
# backfill, a historical replay): its retention check found them on its first run, 30 s after
# the broker started, and a consumer then met "offset out of range".
KEEP = {"retention.ms": "-1"}


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its name, partitions and configs. ``exact``: an existing topic with
    more partitions is refused too (a stream), not only one with fewer."""

    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    exact: bool = False


def state_topic(topology: Topology, node: str) -> str:
    """The state topic of a node."""
    return f"{topology.name}.{node}.state"


def internal_topic(name: str) -> bool:
    """Topics of the machinery, not of the data: ``_*`` (doa's, Kafka's, Confluent's), node
    state topics (``TOPOLOGY.NODE.state``) and Faust's internal topics.

    >>> [internal_topic(t) for t in ("_doa_schemas", "__consumer_offsets", "fraud.scorer.state",
    ...                              "app-__assignor-__leader", "readings", "fraud.dlq")]
    [True, True, True, True, False, False]
    """
    return (name.startswith("_") or name.endswith(".state") or "__assignor" in name
            or name.endswith("-changelog"))


def topology_topics(topology: Topology) -> list[TopicSpec]:
    """Every topic ``topology`` uses, with partitions and configs."""
    specs = [TopicSpec(s.name, s.partitions, {**KEEP, **s.config}, exact=True)
             for s in topology.streams.values()]
    for n in topology.nodes.values():
        parts = topology.streams[n.reads[0]].partitions
        specs.append(TopicSpec(state_topic(topology, n.name), parts, dict(COMPACT)))
    specs.append(TopicSpec(SCHEMAS_TOPIC, 1, dict(COMPACT)))
    return specs


async def ensure_topics(address: str, specs: list[TopicSpec], ready_timeout_s: float = 30.0
                        ) -> None:
    """Create missing topics; refuse existing ones with fewer partitions than declared, and
    with more if ``exact`` (see :func:`more_partitions`), else warn of them (doa writes into
    the declared ones only). Nothing is created when one is refused.

    Topics are replicated ``min(3, brokers)`` times. Returns once every partition of every
    created topic has a leader (on Kafka the brokers learn of a new topic a moment after the
    controller created it; a client asking before then finds no such topic).
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=address, **aiokafka_options(address),
                                request_timeout_ms=10000)
    await admin.start()
    try:
        cluster = await admin.describe_cluster()
        replication = max(1, min(3, len(cluster.get("brokers") or ())))
        existing = await _partition_counts(admin, [s.name for s in specs])
        missing = [s for s in specs if s.name not in existing]
        refused = [s for s in specs if s.name in existing and (
            existing[s.name] < s.partitions or (existing[s.name] > s.partitions and s.exact))]
        if refused:
            raise wrong_partitions({s.name: (existing[s.name], s.partitions) for s in refused})
        for s in specs:
            have = existing.get(s.name)
            if have is not None and have > s.partitions:  # e.g. auto-created by another client
                log.warning("topic %r has %d partitions on the broker, the topology declares "
                            "%d: doa keys its records into the first %d only (declare "
                            "partitions=%d to use them all)", s.name, have, s.partitions,
                            s.partitions, have)
        if missing:
            topics = [NewTopic(s.name, s.partitions, replication,
                               topic_configs=s.config or None) for s in missing]
            response = await admin.create_topics(topics, timeout_ms=10000)
            for entry in getattr(response, "topic_errors", []) or []:
                name, code = entry[0], entry[1]
                if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS (a racing process)
                    message = entry[2] if len(entry) > 2 and entry[2] else ""
                    raise BrokerError(f"could not create topic {name!r}: error code {code}"
                                      + (f" ({message})" if message else ""))
            await _wait_for_leaders(admin, {s.name: s.partitions for s in missing},
                                    ready_timeout_s)
            log.info("created topics %s", ", ".join(s.name for s in missing))
    finally:
        await admin.close()


GROW = "`doa partitions TOPOLOGY --yes` grows"
MOVES = "(a key may then move to another partition and start its state anew)"
BEFORE = ("by another client, e.g. a broker that creates topics with its default count, or "
          "declared otherwise; or this is an out-of-date copy of this topology")


def wrong_partitions(wrong: Mapping[str, tuple[int, int]]) -> BrokerError:
    """The one error for every topic in ``wrong`` (name: partitions on the broker, declared)
    that exists with a partition count doa refuses: one alone is said as before; several are
    named together, so that one ``doa deploy`` shows all there is to fix. Fewer than declared
    (a stream declared larger, a node's state topic that follows it): ``doa partitions``
    grows them; more (a stream's): Kafka cannot shrink a topic.

    >>> print(wrong_partitions({"events": (1, 4)}))
    topic 'events' has 1 partitions on the broker, the topology declares 4: `doa partitions \
TOPOLOGY --yes` grows it (a key may then move to another partition and start its state anew)
    >>> print(wrong_partitions({"t.n.state": (4, 6), "events": (4, 6)}))
    2 topics have other partition counts on the broker than the topology declares: 'events' \
has 4 (declared 6), 't.n.state' 4 (declared 6): `doa partitions TOPOLOGY --yes` grows them (a \
key may then move to another partition and start its state anew)
    >>> print(wrong_partitions({"fares": (4, 2), "rides": (4, 1)}))
    2 topics have other partition counts on the broker than the topology declares: 'fares' \
has 4 (declared 2), 'rides' 4 (declared 1) (created or grown before: by another client, e.g. \
a broker that creates topics with its default count, or declared otherwise; or this is an \
out-of-date copy of this topology): declare those counts, or delete the topics and deploy again
    >>> print(wrong_partitions({"fares": (4, 2), "t.n.state": (1, 2)}))
    2 topics have other partition counts on the broker than the topology declares: 'fares' \
has 4 (declared 2), 't.n.state' 1 (declared 2): `doa partitions TOPOLOGY --yes` grows \
't.n.state' (a key may then move to another partition and start its state anew); 'fares' has \
more (created or grown before: by another client, e.g. a broker that creates topics with its \
default count, or declared otherwise; or this is an out-of-date copy of this topology): declare \
its count, or delete it and deploy again
    """
    if len(wrong) == 1:
        [(name, (have, declared))] = wrong.items()
        if have > declared:
            return more_partitions(name, have, declared)
        return BrokerError(f"topic {name!r} has {have} partitions on the broker, the topology "
                           f"declares {declared}: {GROW} it {MOVES}")
    listed = [f"{name!r} {'has ' if i == 0 else ''}{have} (declared {declared})"
              for i, (name, (have, declared)) in enumerate(sorted(wrong.items()))]
    fewer = sorted(name for name, (have, declared) in wrong.items() if have < declared)
    more = sorted(name for name, (have, declared) in wrong.items() if have > declared)
    hints = [f": {GROW} {_names(fewer) if more else 'them'} {MOVES}"] if fewer else []
    if more and not fewer:
        hints.append(f" (created or grown before: {BEFORE}): declare those counts, or delete the "
                     "topics and deploy again")
    elif more:
        one = len(more) == 1
        hints.append(f"; {_names(more)} {'has' if one else 'have'} more (created or grown before: "
                     f"{BEFORE}): declare {'its count' if one else 'their counts'}, or delete "
                     f"{'it' if one else 'them'} and deploy again")
    return BrokerError(f"{len(wrong)} topics have other partition counts on the broker than "
                       f"the topology declares: {', '.join(listed)}{''.join(hints)}")


def _names(names: list[str]) -> str:
    """``'a'``, ``'a' and 'b'``, ``'a', 'b' and 'c'``."""
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"


def more_partitions(stream: str, have: int, declared: int) -> BrokerError:
    """The error for a stream's topic with more partitions than declared (another client
    created it, e.g. a publish before ``doa deploy`` on a broker that creates topics; or
    ``doa partitions`` grew it for a newer copy of the topology than this one).

    >>> print(more_partitions("readings", 4, 1))
    stream 'readings' has 4 partitions on the broker, the topology declares 1 (its topic was \
created or grown before: by another client, or declared otherwise; or this is an out-of-date \
copy of this topology): declare partitions=4 for it, or delete the topic and deploy again
    """
    return BrokerError(f"stream {stream!r} has {have} partitions on the broker, the topology "
                       f"declares {declared} (its topic was created or grown before: by another "
                       "client, or declared otherwise; or this is an out-of-date copy of this "
                       f"topology): declare partitions={have} for it, or delete the topic and "
                       "deploy again")


def outgrown(node: str, state: str, declared: Mapping[str, int],
             have: Mapping[str, int]) -> BrokerError | None:
    """The error a running node stops with when one of its input streams has more partitions
    on the broker (``have``, by stream) than the topology declares (``declared``, by stream);
    None if none has. Partitions were added while it ran (``kafka-topics --alter``): it would
    be assigned partitions that its state topic ``state`` does not have, while doa routes keys,
    reads outputs and co-partitions joins by the declared count (the same refusal as
    :func:`more_partitions`, for a topic that grew after the deploy).

    >>> print(outgrown("count", "t.count.state", {"events": 4, "labels": 4},
    ...                {"events": 4, "labels": 6}))
    node 'count': stream 'labels' has 6 partitions on the broker, the topology declares 4 \
(partitions were added while the node ran; it stopped): declare partitions=6 for it, then \
`doa partitions TOPOLOGY --yes` gives the node's state topic 't.count.state' 6 too (a key may \
then move to another partition and start its state anew), or delete the topic and deploy again
    >>> outgrown("count", "t.count.state", {"events": 4}, {"events": 4}) is None
    True
    """
    for stream in sorted(declared):
        n = have.get(stream, 0)
        if n > declared[stream]:
            return BrokerError(
                f"node {node!r}: stream {stream!r} has {n} partitions on the broker, the "
                f"topology declares {declared[stream]} (partitions were added while the node "
                f"ran; it stopped): declare partitions={n} for it, then `doa partitions "
                f"TOPOLOGY --yes` gives the node's state topic {state!r} {n} too {MOVES}, or "
                "delete the topic and deploy again")
    return None


@dataclass(frozen=True)
class Growth:
    """A topic to grow from ``have`` partitions to ``declared`` (:func:`partition_plan`)."""

    name: str
    have: int
    declared: int


def partition_plan(topology: Topology, existing: Mapping[str, int]) -> list[Growth]:
    """The topics of ``topology`` that ``doa partitions`` grows on a broker whose topics have
    ``existing`` partitions (by name): every stream, and every node's state topic, there with
    fewer than declared (a state topic has its input stream's count, whatever it has now).
    Topics not there yet are left to ``doa deploy``. A stream with more than declared is a
    one-line refusal, and nothing is grown: Kafka cannot remove partitions.

    >>> from doa import Topology
    >>> t = Topology("t")
    >>> e = t.stream("events", schema="doa.DeadLetter", key="node", partitions=6)
    >>> o = t.stream("out", schema="doa.DeadLetter", key="node", partitions=6)
    >>> _ = t.node(reads=e, writes=o, state=dict, name="n")(lambda state, batch: (state, []))
    >>> partition_plan(t, {"events": 4, "out": 6, "t.n.state": 4})
    [Growth(name='events', have=4, declared=6), Growth(name='t.n.state', have=4, declared=6)]
    >>> partition_plan(t, {"events": 6, "out": 6, "t.n.state": 4})  # the stream grew before
    [Growth(name='t.n.state', have=4, declared=6)]
    >>> partition_plan(t, {"events": 8})
    Traceback (most recent call last):
    ...
    doa.local.embedded.BrokerError: cannot shrink a topic (Kafka cannot remove partitions), \
nothing was changed: stream 'events' has 8 partitions on the broker, the topology declares 6 ...
    """
    specs = [s for s in topology_topics(topology) if s.name != SCHEMAS_TOPIC]
    more = {s.name: (existing[s.name], s.partitions) for s in specs
            if s.exact and existing.get(s.name, 0) > s.partitions}
    if more:
        raise BrokerError("cannot shrink a topic (Kafka cannot remove partitions), nothing was "
                          f"changed: {wrong_partitions(more)}")
    return [Growth(s.name, existing[s.name], s.partitions) for s in specs
            if 0 < existing.get(s.name, 0) < s.partitions]


def grow_partitions(address: str, plan: list[Growth], apply: bool,
                    timeout_s: float = 30.0) -> None:
    """Grow every topic of ``plan`` on ``address`` to its declared count, in one
    CreatePartitions request (kafka-python's admin client); with ``apply`` False the broker
    only validates it. Returns once every new partition has a leader; a broker without
    CreatePartitions (tansu) is a one-line refusal, and so is each topic the broker refuses.
    """
    import time

    from kafka import KafkaAdminClient
    from kafka.errors import UnsupportedVersionError, for_code

    from doa.cluster.security import kafka_python_options

    admin = KafkaAdminClient(bootstrap_servers=address, **kafka_python_options(address),
                             request_timeout_ms=int(timeout_s * 1000))
    try:
        try:
            answer = admin.create_partitions({g.name: g.declared for g in plan},
                                             timeout_ms=10000, validate_only=not apply,
                                             raise_errors=False)
        except UnsupportedVersionError:
            raise BrokerError(f"the broker at {address} cannot add partitions to a topic (it "
                              "does not offer Kafka's CreatePartitions request, e.g. tansu): "
                              "nothing was changed; delete the topics and deploy again to "
                              "have them with the declared counts") from None
        refused = [f"{r.name!r}: {for_code(r.error_code).__name__}"
                   + (f" ({r.error_message})" if r.error_message else "")
                   for r in answer.results if r.error_code]
        if refused:
            raise BrokerError(f"the broker at {address} refused to grow {'; '.join(refused)}")
        deadline = time.monotonic() + timeout_s
        pending = {g.name: g.declared for g in plan} if apply else {}
        while pending:
            for topic in admin.describe_topics(list(pending)):
                parts = topic.get("partitions") or []
                if len(parts) >= pending.get(topic["name"], 0) and all(
                        p.get("leader_id", -1) >= 0 for p in parts):
                    pending.pop(topic["name"], None)
            if pending and time.monotonic() > deadline:
                raise BrokerError(f"topics {', '.join(sorted(pending))} were grown but have no "
                                  f"leader for every partition after {timeout_s:.0f} s")
            time.sleep(0.05 if pending else 0)
    finally:
        admin.close()


async def _wait_for_leaders(admin: object, wanted: dict[str, int], timeout_s: float) -> None:
    import asyncio
    import time

    deadline = time.monotonic() + timeout_s
    pending = dict(wanted)
    while True:
        described = await admin.describe_topics(list(pending))  # type: ignore[attr-defined]
        for topic in described:
            parts = topic.get("partitions") or []
            if (topic.get("error_code", 0) == 0 and len(parts) >= pending.get(topic["topic"], 0)
                    and all(p.get("leader", -1) >= 0 for p in parts)):
                pending.pop(topic["topic"], None)
        if not pending:
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {', '.join(sorted(pending))} were created but have no "
                              f"leader after {timeout_s:.0f} s")
        await asyncio.sleep(0.05)


async def _partition_counts(admin: object, names: list[str]) -> dict[str, int]:
    # Describing a topic that does not exist auto-creates it on some brokers (tansu, Kafka
    # with auto.create.topics.enable), so list first and describe only what exists.
    listed = set(await admin.list_topics())  # type: ignore[attr-defined]
    names = [n for n in names if n in listed]
    if not names:
        return {}
    described = await admin.describe_topics(names)  # type: ignore[attr-defined]
    out: dict[str, int] = {}
    for topic in described:
        if topic.get("error_code", 0) == 0 and topic.get("partitions"):
            out[topic["topic"]] = len(topic["partitions"])
    return out


async def batch_limits(address: str, topics: list[str], timeout_s: float = 5.0
                       ) -> dict[str, int]:
    """Each of ``topics``' ``max.message.bytes`` as the broker enforces it (the topic's own
    setting, or the broker's default): the largest record batch it takes. A topic the broker
    says nothing of is left out, and so is every topic of a broker that cannot tell (tansu
    closes the connection on DescribeConfigs; it takes batches of any size).

    A producer batching beyond it has whole batches refused though each record fits
    (:mod:`doa.engines.delivery` sizes its batches to it).
    """
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    if not topics:
        return {}
    admin = AIOKafkaAdminClient(bootstrap_servers=address, **aiokafka_options(address),
                                request_timeout_ms=int(timeout_s * 1000))
    limits: dict[str, int] = {}
    try:
        await admin.start()
        answers = await asyncio.wait_for(admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t, {"max.message.bytes": None})
             for t in topics]), timeout_s)
        for answer in answers:
            for error, _, _, name, entries, *_ in answer.resources:
                for key, value, *_ in entries if error == 0 else ():
                    if key == "max.message.bytes" and str(value).isdigit():
                        limits[name] = int(value)
    except Exception as exc:  # a broker that cannot tell: batches as large as doa's own
        log.debug("max.message.bytes of %s: %s: %s", topics, type(exc).__name__, exc)
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    return limits
