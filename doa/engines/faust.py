"""The faust engine: doa nodes as agents of a faust-streaming app (the interop path).

For teams already running Faust: :func:`mount` adds a topology's nodes to your ``faust.App``
as agents; ``doa run TOPOLOGY --engine faust`` runs each node in an app of its own
(:class:`FaustWorker`, consumer group ``TOPOLOGY.NODE.faust``: see :func:`group_id`). The nodes
do exactly what they do on the kafka engine: the same step, validation, doa's Avro codec (the
topics are raw bytes to Faust, never Faust's serializers), dead letters and lineage headers.
Batches come from ``stream.take_events(max_records, within=fetch_max_wait_ms)``.

State (DESIGN invariant 3) holds as on the kafka engine: no Faust tables. On every rebalance
each node loads the latest snapshot of each assigned partition from its state topic and
commits the offsets that snapshot covers, before Faust seeks its consumer to the committed
offsets; the node then processes only the offset it expects next (re-deliveries are skipped,
a consumer that is ahead is sought back). Snapshots are written as on the kafka engine, after
the outputs they cover are acknowledged, and when partitions are revoked or the app stops.
So after ``kill -9`` the recovered state equals that of a run that never crashed, and the
replay does not write again what the killed run wrote (:mod:`doa.runtime.written`). No
exactly-once: Faust's ``processing_guarantee="exactly_once"`` needs transactions (tansu has
none); do not set it.

While the broker is away the app waits for it, as the kafka engine does: outputs in flight
stay unacknowledged (``NodeStats.outputs_unacked`` counts them) and no snapshot claims them.
When it is back, Faust's consumer rejoins its group; the rebalance loads each partition's
snapshot again and the node resumes from it, without a restart (the same test as the kafka
engine's: tests/integration/test_broker_outage.py). A stop meanwhile is bounded by
``doa run``'s grace (:mod:`doa.engines.outage`).

A broker replaced by an empty one (the embedded broker restarted, a Kafka node without its
data): the app's clients never ask it to create a topic (:mod:`doa.engines.faust_topics`; only
``doa deploy`` and ``doa run``'s preparation make topics). The rebalance that follows finds the
node's inputs or state topic gone: the node says so once, drops the state of the log that went
(there is no state topic to snapshot it to) and :class:`FaustWorker` takes the app out of its
consumer group, asking the broker every second; once ``doa deploy`` made them again it says so,
joins again and restores the snapshot that broker holds (none: from the beginning of its
inputs). A Faust app of your own that mounts nodes keeps its own clients and its group: the
node says the same lines and holds no partition until a rebalance brings its topics back.

An input stream that gains partitions while the app runs: the rebalance that hands them over
loads none of its assignment, the group commits what the snapshots cover, and
:class:`FaustWorker` stops with one line (:func:`doa.cluster.admin.outgrown`); a member given
none of the added partitions goes on with its declared ones until a rebalance gives it one.

Faust's stream path costs ~140 µs of CPU per record (lab note, DESIGN.md): the kafka engine
stays the default and the hot path. This is the only doa module importing faust (the
``[faust]`` extra); its import reads ``sys.argv`` (``--datadir``, ``-L``/``--loop``), so it is
imported here with ``sys.argv`` hidden from it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
import weakref
from collections.abc import Sequence
from typing import Any

from doa.cluster.admin import batch_limits
from doa.engines import EngineSettings, NodeStats
from doa.engines.faust_app import (
    abandon_app,
    free_port,
    fresh_datadir,
    join_error,
    short_fetch_wait,
)
from doa.engines.faust_node import MountedNode
from doa.engines.faust_topics import no_auto_create_clients
from doa.engines.partitioned import METADATA_MAX_AGE_MS
from doa.errors import DoaError
from doa.node import Node
from doa.runtime.runner import RawRecord
from doa.topology.topology import Topology


def _import_faust() -> Any:
    argv, sys.argv = sys.argv, sys.argv[:1]  # faust/__init__.py parses argv at import
    try:
        import faust
    finally:
        sys.argv = argv
    return faust


faust = _import_faust()
from mode.threads import WorkerThread  # noqa: E402  (faust first: it hides sys.argv)

__all__ = ["FaustWorker", "MountedNode", "app_settings", "broker_credentials", "mount"]

log = logging.getLogger(__name__)

JOIN_TIMEOUT_S = 60.0  # FaustWorker.start: the first assignment, at the latest

_MOUNTED: weakref.WeakKeyDictionary[Any, list[MountedNode]] = weakref.WeakKeyDictionary()


def app_settings(settings: EngineSettings | None = None) -> dict[str, Any]:
    """``faust.App`` keyword arguments matching doa's engine settings and the embedded broker.

    Consumer and producer knobs as on the kafka engine (session timeout 3 s, heartbeat 1 s,
    linger, acks); memory store, no topic declarations and no leader topic (doa creates its
    topics; tansu needs nothing else), at-least-once. No web server, except under
    ``faust worker`` (which turns it on): then on Faust's port 6066 if it is free, else on a
    free port. A fresh data directory per call, removed when the process exits.

    Examples
    --------
    >>> s = app_settings(EngineSettings(session_timeout_ms=3000))
    >>> s["broker_session_timeout"], s["processing_guarantee"], s["web_enabled"]
    (3.0, 'at_least_once', False)
    >>> s["datadir"] != app_settings()["datadir"]  # two apps never share a data directory
    True
    """
    s = settings or EngineSettings.from_env()
    return {
        "web_enabled": False, "web_port": free_port(6066), "store": "memory://",
        "autodiscover": False, "topic_allow_declare": False, "topic_disable_leader": True,
        "processing_guarantee": "at_least_once",
        "broker_session_timeout": s.session_timeout_ms / 1000,
        "broker_heartbeat_interval": s.heartbeat_interval_ms / 1000,
        "broker_max_poll_records": s.max_records,
        "consumer_auto_offset_reset": "earliest",
        # partitions added to an input are seen within seconds (PartitionedNode._outgrown)
        "consumer_metadata_max_age_ms": METADATA_MAX_AGE_MS,
        "producer_linger": s.linger_ms / 1000,
        "producer_acks": -1 if s.acks == "all" else int(s.acks),
        "producer_max_request_size": 2 * s.chunk_size + 65536,
        "datadir": fresh_datadir(),
    }


def broker_credentials(address: str) -> dict[str, Any]:
    """``faust.App`` keyword arguments for doa's client security (:mod:`doa.cluster.security`).

    Checked against ``address`` first (one line if the broker refuses them). A Faust app of
    your own that mounts doa nodes sets its ``broker_credentials`` itself; doa's other
    clients (state reader, producers) still take theirs from the environment.
    """
    from doa.cluster.security import client_security, preflight

    security = client_security()
    if security.protocol == "PLAINTEXT":
        return {}
    preflight(address, security)
    context = security.ssl_context() if security.tls else None
    if security.sasl:
        return {"broker_credentials": faust.SASLCredentials(
            username=security.username, password=security.password,
            mechanism=security.mechanism, ssl_context=context)}
    return {"broker_credentials": faust.SSLCredentials(context)}


def mount(app: Any, topology: Topology, nodes: Sequence[str] | None = None,
          settings: EngineSettings | None = None) -> list[MountedNode]:
    """Add ``topology``'s nodes (default: all) to the Faust ``app`` as agents.

    Each node becomes an agent named ``doa.TOPOLOGY.NODE`` reading its input streams as raw
    bytes; the app's consumer group (``app.conf.id``) is the nodes' group. The topology's topics
    must exist (``doa.engines.launch.prepare(topology, address)`` creates them and registers
    schemas).
    Returns the mounted nodes (``.stats`` counts what each did).
    """
    from doa.engines.launch import select_nodes

    s = settings or EngineSettings.from_env()
    address = ",".join(f"{url.host}:{url.port or 9092}" for url in app.conf.broker)
    mounted = _MOUNTED.get(app)
    if mounted is None:
        mounted = _MOUNTED[app] = []
        _connect(app, mounted)
    added = []
    for name in select_nodes(topology, nodes):
        m = MountedNode(app, topology, topology.nodes[name], address, s)
        channel = app.topic(*m.node.reads, key_serializer="raw", value_serializer="raw",
                            allow_empty=True)
        app.agent(channel, name=f"doa.{topology.name}.{name}", concurrency=1)(_agent(m))
        mounted.append(m)
        added.append(m)
    return added


def _agent(m: MountedNode) -> Any:
    s = m.settings

    async def agent(stream: Any) -> None:
        ticker = asyncio.create_task(_tick(m)) if len(m.node.reads) > 1 else None
        try:
            async for events in stream.take_events(s.max_records, s.fetch_max_wait_ms / 1000):
                await m.process([_raw(e.message) for e in events])
        except Exception as exc:
            m.failure = exc
            raise
        finally:
            if ticker is not None:
                ticker.cancel()

    agent.__name__ = agent.__qualname__ = f"doa_{m.topology.name}_{m.node.name}"
    return agent


async def _tick(m: MountedNode) -> None:
    while True:  # a merge releases buffered records after max_idle_ms even without new input
        await asyncio.sleep(m.settings.max_idle_ms / 1000)
        await m.tick()


def _raw(message: Any) -> RawRecord:
    ts = message.timestamp  # seconds (float) in Faust
    return RawRecord(message.topic, message.partition, message.offset,
                     round(ts * 1000) if ts is not None else 0, message.key, message.value,
                     tuple(message.headers or ()))


def _connect(app: Any, mounted: list[MountedNode]) -> None:
    """One set of rebalance handlers per app, for all the nodes mounted on it."""

    async def revoked(sender: Any, revoked: Any, **_: Any) -> None:
        for m in mounted:
            await m.revoke(revoked)

    async def rebalanced(sender: Any, **_: Any) -> None:
        # Sent by Faust after assignment, before it seeks the consumer to the committed
        # offsets and resumes: commit the offsets the snapshots cover, so the seek lands there.
        # Several nodes reading one stream: the lowest (each skips what it has already seen).
        assignment = app.consumer.assignment()
        offsets: dict[Any, int] = {}
        for m in mounted:
            for tp, offset in (await m.assign(assignment)).items():
                offsets[tp] = min(offset, offsets.get(tp, offset))
        if not offsets:
            return
        if not await app.consumer._commit(offsets):
            log.warning("could not commit snapshot offsets (a rebalance again?); the nodes "
                        "will seek back to them if Faust delivers later records")
        # aiokafka's seek_to_committed skips a committed offset of 0: seek ourselves too.
        await app.consumer.seek_wait(offsets)

    async def stopping(sender: Any, **_: Any) -> None:
        for m in mounted:
            await m.shutdown()
            await m.close()

    app.on_partitions_revoked.connect(revoked)
    app.on_rebalance_complete.connect(rebalanced)
    app.on_before_shutdown.connect(stopping)


def group_id(topology: Topology, node: Node) -> str:
    """The consumer group of a node on ``doa run --engine faust``: ``TOPOLOGY.NODE.faust``.

    Not the kafka engine's ``TOPOLOGY.NODE``: a group keeps its members' protocol (aiokafka's
    assignors there, Faust's own here), and the embedded broker refuses the other protocol even
    once the group is empty. Nothing is lost by the separate group: both engines position a
    node's inputs at the offsets its latest snapshot covers, not at the group's committed
    offsets, so a node moved from one engine to the other continues its state exactly.

    Examples
    --------
    >>> from doa.topology.topology import Topology
    >>> from doa.wire.schema import builtin_schema_dir
    >>> t = Topology("demo", schemas=builtin_schema_dir())
    >>> s = t.stream("s", schema="doa.DeadLetter")
    >>> @t.node(reads=s, writes=[], state=dict)
    ... def count(state, batch):
    ...     return state, []
    >>> group_id(t, t.nodes["count"])
    'demo.count.faust'
    """
    return f"{topology.name}.{node.name}.faust"


class FaustWorker:
    """``doa run --engine faust``: one node in a Faust app of its own (the Worker shape)."""

    def __init__(self, topology: Topology, node: Node, address: str,
                 settings: EngineSettings | None = None, stats: NodeStats | None = None) -> None:
        self.topology = topology
        self.node = node
        self.address = address
        self.settings = settings or EngineSettings.from_env()
        self.stats = stats or NodeStats()
        self.app: Any = None
        self.mounted: MountedNode | None = None

    async def start(self) -> None:
        s = self.settings
        brokers = ";".join(f"kafka://{a.strip()}" for a in self.address.split(","))
        # Faust's producer batches up to 16 KiB: less if an output's topic takes less
        limits = await batch_limits(self.address, self.topology.outputs(self.node.name))
        app = faust.App(group_id(self.topology, self.node), broker=brokers,
                        broker_client_id=f"doa-{self.node.name}", **app_settings(s),
                        producer_max_batch_size=min([16384, *limits.values()]),
                        **broker_credentials(self.address))
        [self.mounted] = mount(app, self.topology, [self.node.name], s)
        self.mounted.stats = self.stats
        await self.mounted.open()  # kernels compile before the app joins its group
        _daemon_consumer_thread(app)
        no_auto_create_clients(app)  # only doa deploy makes topics
        self.app = app
        # app.start() returns once the first assignment is loaded and sought; Faust only logs
        # a fatal join error (e.g. a session timeout the broker refuses) and waits forever.
        starting = asyncio.ensure_future(app.start())
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not starting.done():
            await asyncio.wait({starting}, timeout=0.2)
            error = join_error(app)
            if error is not None or time.monotonic() > deadline:
                starting.cancel()
                await self.close()
                if isinstance(error, DoaError):  # doa's own, loading the assignment (a
                    # snapshot that does not unpickle): it says what is wrong itself
                    raise DoaError(f"node {self.node.name!r}: {error}") from error
                why = f"{type(error).__name__}: {error}" if error else \
                    f"no assignment within {JOIN_TIMEOUT_S:.0f} s"
                raise DoaError(f"node {self.node.name!r}: the Faust app could not join consumer "
                               f"group {app.conf.id!r} on {self.address} ({why})")
        starting.result()
        short_fetch_wait(app, s.fetch_max_wait_ms)
        self._raise_failure()

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set (or the app or the agent fails), then stop the app."""
        try:
            while not stop.is_set():
                self._raise_failure()
                if self.mounted is not None:  # out of its group while its topics are gone
                    await self.mounted.mind_topics()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=0.1)
        finally:
            await self.close()
        self._raise_failure()  # the agent failed while the stop came: the run failed too

    async def close(self) -> None:
        """Stop the app: the node snapshots every partition first (``on_before_shutdown``).

        With the broker gone the stop may wait forever; ``doa run`` cancels it after its
        grace period, and then this returns at once (what is left is reported from
        ``stats``, and the consumer's thread does not hold the process).
        """
        app, self.app = self.app, None
        if app is not None:
            stopping = asyncio.ensure_future(app.stop())
            try:
                await asyncio.wait({stopping})  # a cancel interrupts the wait, not the stop
            except asyncio.CancelledError:
                if self.mounted is not None:
                    self.mounted.abandon()
                await abandon_app(stopping)
                raise
            stopping.result()
            self.stats.offsets_uncommitted = 0
        if self.mounted is not None:
            await self.mounted.close()

    def _raise_failure(self) -> None:
        if self.mounted is not None and self.mounted.failure is not None:
            raise self.mounted.failure
        if self.mounted is not None and self.mounted.refusal is not None:
            raise self.mounted.refusal  # an input gained partitions (MountedNode.assign)
        if self.app is not None and self.app.crashed:
            reason = self.app.crash_reason
            raise reason if reason is not None else RuntimeError("the Faust app crashed")


class _DaemonWorker(WorkerThread):
    def __init__(self, service: Any, **kwargs: Any) -> None:
        super().__init__(service, **kwargs)
        self.daemon = True


def _daemon_consumer_thread(app: Any) -> None:
    """Faust's consumer runs its own event loop in a thread (mode's ``ServiceThread``), not a
    daemon: with the broker gone a stop can leave it waiting forever, and the interpreter
    waits for it at exit. doa bounds the stop (``DOA_SHUTDOWN_GRACE_S``) and exits anyway;
    nothing is lost (input not committed is read again, outputs keep their ids)."""
    thread = getattr(app.consumer, "_thread", None)
    if thread is not None:
        thread.Worker = _DaemonWorker
