"""A running process describes itself: its description and heartbeats on ``_doa_topologies``.

:func:`announced` wraps a run (``doa run``, either engine): it starts an :class:`Announcer`
thread that creates the topic if needed, writes the process's description
(:func:`doa.catalog.describe.describe_process`), then a heartbeat every ``DOA_HEARTBEAT_S``
seconds with the nodes' counts: ``"status": "starting"`` until the run's first tick (its
nodes have started: loaded their models and snapshots), then at once ``"running"``, so the
catalog lists a process that is starting as starting, not as missing; when the run ends it
writes the description and a heartbeat with ``"status": "stopped"``. When a node's group
assigns it other partitions (the stats of the kafka engine say which,
:class:`doa.engines.group.GroupStats`), the next tick notes it and the thread writes the
description again at once, with the new ``assigned``. The thread has its own
Kafka producer and never blocks the nodes: a failure to publish is one warning in the log
(and one more line when it works again), never an error of the run. ``kill -9`` writes
nothing: the heartbeats stop, and the catalog shows the process as not alive after three
intervals.

Examples
--------
>>> from doa import Topology
>>> t = Topology("t")
>>> a = Announcer(t, "127.0.0.1:9", ["n"], "kafka", interval_s=5.0)
>>> a.description["runs"], a.key
(['n'], ...)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from doa.catalog.describe import (
    DESCRIPTIONS,
    HEARTBEATS,
    PARTITIONS,
    TOPIC,
    assigned_of,
    describe_process,
    encode,
    heartbeat,
    heartbeat_s,
    now_ms,
    process_key,
)
from doa.errors import first_line
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

Tick = Callable[[float, dict[str, Any]], None]


class Announcer:
    """A daemon thread that publishes one process's description and heartbeats.

    Parameters
    ----------
    topology : the topology the process runs
    address : the broker's bootstrap address
    runs : the nodes this process runs
    engine : the engine running them
    interval_s : seconds between heartbeats (None: ``DOA_HEARTBEAT_S``, default 5)
    """

    def __init__(self, topology: Topology, address: str, runs: Sequence[str], engine: str,
                 interval_s: float | None = None) -> None:
        self.topology = topology
        self.address = address
        self.runs = list(runs)
        self.engine = engine
        self.interval_s = heartbeat_s() if interval_s is None else interval_s
        self.description = describe_process(topology, self.runs, engine, self.interval_s)
        self.key = process_key(self.description)
        self.stats: Mapping[str, Any] = {}
        self.sent = 0  # records the broker acknowledged
        self._stop = threading.Event()
        self._running = threading.Event()  # set by the first tick: the nodes have started
        self._wake = threading.Event()  # a heartbeat now (the nodes started, or a stop)
        self._redescribe = threading.Event()  # the description changed: write it again
        self._failing = False
        self.error: str | None = None  # the run's error, if it ended with one
        self._producer: Any = None
        self._thread = threading.Thread(target=self._run, name="doa announcer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def tick(self, inner: Tick | None) -> Tick:
        """A ``tick`` for :func:`doa.engines.launch.run_nodes` that keeps the nodes' stats for
        the heartbeats, then calls ``inner`` (if any)."""
        def tick(elapsed: float, stats: dict[str, Any]) -> None:
            self.stats = stats
            self._note_assignments(stats)
            if not self._running.is_set():  # the first tick: say "running" now, not later
                self._running.set()
                self._wake.set()
            if inner is not None:
                inner(elapsed, stats)
        return tick

    def _note_assignments(self, stats: Mapping[str, Any]) -> None:
        """A description with the nodes' assignments (where known), and a wake to write it,
        if they changed since the last one."""
        assigned = {name: a for name, s in stats.items()
                    if (a := assigned_of(getattr(s, "assigned", None))) is not None}
        if assigned and assigned != self.description.get("assigned"):
            self.description = {**self.description, "assigned": assigned}
            self._redescribe.set()
            self._wake.set()

    def stop(self, timeout_s: float = 1.0) -> None:
        """Write the stopped records (within ``timeout_s``) and end the thread.

        The run's own bounded stop has already spent the grace period, so this waits at most
        ``timeout_s`` more: with the broker gone, the thread (a daemon) is left to die with
        the process and its producer is abandoned (:func:`_abandon`).
        """
        self._stop.set()
        self._wake.set()
        gone = self._failing or not _listening(self.address)
        self._thread.join(0.0 if gone else timeout_s)
        if self._thread.is_alive() and self._producer is not None:
            _abandon(self._producer)

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._send(DESCRIPTIONS, self.description)  # connects (and again after a failure)
            while True:
                if self._redescribe.is_set():  # a rebalance: the new assignment now
                    self._redescribe.clear()
                    self._send(DESCRIPTIONS, self.description)
                status = "running" if self._running.is_set() else "starting"
                self._send(HEARTBEATS, heartbeat(self.description, self.stats, status=status))
                self._wake.wait(self.interval_s)
                self._wake.clear()
                if self._stop.is_set():
                    break
            stopped = now_ms()
            ended: dict[str, Any] = {"status": "stopped", "stopped_at": stopped,
                                     "assigned": {}}  # it holds no partition any more
            if self.error is not None:
                ended["error"] = self.error
            self._send(DESCRIPTIONS, {**self.description, **ended})
            self._send(HEARTBEATS, heartbeat(self.description, self.stats, status="stopped",
                                             now_ms=stopped))
        except Exception as exc:  # never let the catalog's records break the run
            self._warn(exc)
        finally:
            if self._producer is not None:
                try:
                    self._producer.close(timeout=0.5)
                except Exception:
                    _abandon(self._producer)

    def _connect(self) -> None:
        from kafka import KafkaProducer

        from doa.cluster.admin import COMPACT, TopicSpec, ensure_topics
        from doa.cluster.security import kafka_python_options

        asyncio.run(ensure_topics(self.address, [TopicSpec(TOPIC, PARTITIONS, dict(COMPACT))]))
        self._producer = KafkaProducer(bootstrap_servers=self.address,
                                       **kafka_python_options(self.address), acks=1,
                                       linger_ms=0, max_block_ms=5000,
                                       request_timeout_ms=5000, retries=2,
                                       client_id="doa-announcer")

    def _send(self, partition: int, record: Mapping[str, Any]) -> None:
        try:
            if self._producer is None:  # the last send failed: the topic anew, a new client
                self._connect()
            future = self._producer.send(TOPIC, key=self.key.encode(), value=encode(record),
                                         partition=partition)
            future.get(timeout=1.0 if self._stop.is_set() else max(5.0, self.interval_s))
        except Exception as exc:
            self._warn(exc)
            self._drop()
            return
        self.sent += 1
        if self._failing:
            self._failing = False
            log.warning("%s: publishing to %s on %s works again", self.key, TOPIC, self.address)

    def _drop(self) -> None:
        """Close the producer after a failed send; the next send makes the topic (if the
        broker lost it: a broker replaced by an empty one) and a new producer. A kafka-python
        producer kept waiting for the metadata of a topic that is not there asked for it
        without pause (on Kafka, which does not create it: most of a core)."""
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=0.5)
            except Exception:
                _abandon(producer)

    def _warn(self, exc: BaseException) -> None:
        if not self._failing:
            self._failing = True
            log.warning("%s: could not publish to %s on %s (%s); the catalog may show this "
                        "process as not alive, the nodes go on", self.key, TOPIC, self.address,
                        first_line(exc, kind=True))


@contextlib.contextmanager
def announced(topology: Topology, address: str, runs: Sequence[str], engine: str,
              tick: Tick | None = None) -> Iterator[Tick]:
    """Announce this process while the block runs; yields the ``tick`` to give the run.

    Set ``DOA_ANNOUNCE=0`` to publish nothing.
    """
    import os

    if os.environ.get("DOA_ANNOUNCE", "1") == "0":
        yield tick if tick is not None else _no_tick
        return
    try:
        announcer = Announcer(topology, address, runs, engine)
        announcer.start()
    except Exception as exc:  # a description that cannot be built must not stop the run
        log.warning("could not describe topology %r for %s (%s: %s)", topology.name, TOPIC,
                    type(exc).__name__, exc)
        yield tick if tick is not None else _no_tick
        return
    try:
        yield announcer.tick(tick)
    except Exception as exc:  # the catalog says the run failed, and why, not only "stopped"
        announcer.error = f"{type(exc).__name__}: {exc}"[:500]
        raise
    finally:
        announcer.stop()


def _no_tick(elapsed: float, stats: dict[str, Any]) -> None:
    """A tick that does nothing."""


def _abandon(producer: Any) -> None:
    """Forget a kafka-python producer whose broker is gone: its exit hook and ``__del__``
    would flush again, wait, and print a traceback into the command's output."""
    with contextlib.suppress(Exception):
        producer._unregister_cleanup()
    producer._closed = True  # close() (and so __del__) returns at once


def _listening(address: str, timeout_s: float = 0.2) -> bool:
    """Whether the first bootstrap address accepts a connection (a stop does not wait for a
    broker that is gone)."""
    import socket

    host, _, port = address.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout_s).close()
    except (OSError, ValueError):
        return False
    return True
