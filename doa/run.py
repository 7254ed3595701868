"""Run a topology's nodes on a broker: the code behind ``doa run`` (and the demo, and tests).

Without a broker address (``--broker`` or ``DOA_BROKER``) an embedded broker is started and
stopped with the run. Topics are created with their declared partitions, schemas registered
(refusing incompatible changes), then one worker per selected node runs in one event loop
until the time is up or SIGTERM/SIGINT arrives; then each worker finishes its batch, flushes,
snapshots, commits and leaves its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from doa.admin import ensure_topics, topology_topics
from doa.broker import EmbeddedBroker, configured_broker
from doa.engines import EngineSettings, NodeStats, worker_class
from doa.errors import DoaError
from doa.topology import Topology

log = logging.getLogger(__name__)

Tick = Callable[[float, dict[str, NodeStats]], None]


@dataclass
class RunReport:
    """What a run did, per node."""

    broker: str
    seconds: float
    stats: dict[str, NodeStats] = field(default_factory=dict)
    stopped_by: str = "time"


@contextlib.contextmanager
def broker_for(address: str | None) -> Iterator[str]:
    """Yield ``address`` if one is configured, else the address of a fresh embedded broker."""
    configured = configured_broker(address)
    if configured:
        yield configured
        return
    with EmbeddedBroker() as broker:
        yield broker.address


def prepare(topology: Topology, address: str) -> list[str]:
    """Check the topology, create its topics, register its schemas; new schema versions."""
    from doa.registry import register

    topology.check()
    asyncio.run(ensure_topics(address, topology_topics(topology)))
    return register(address, topology)


def select_nodes(topology: Topology, nodes: Sequence[str] | None) -> list[str]:
    if not nodes:
        return list(topology.nodes)
    unknown = [n for n in nodes if n not in topology.nodes]
    if unknown:
        raise DoaError(f"topology {topology.name!r} has no node {', '.join(map(repr, unknown))}"
                       f" (nodes: {', '.join(topology.nodes)})")
    return list(nodes)


async def run_nodes(topology: Topology, address: str, nodes: Sequence[str],
                    seconds: float | None = None, settings: EngineSettings | None = None,
                    tick: Tick | None = None, stop: asyncio.Event | None = None,
                    signals: bool = True,
                    until: Callable[[dict[str, NodeStats]], bool] | None = None,
                    engine: str = "kafka") -> RunReport:
    """Run ``nodes`` until ``seconds`` pass, ``stop`` is set, SIGTERM/SIGINT, or ``until``.

    ``until(stats)`` is checked ten times a second; tests use it to stop once every input
    has been read.
    """
    from doa.engines import make_worker

    stop = stop or asyncio.Event()
    report = RunReport(address, 0.0)
    loop = asyncio.get_running_loop()
    if signals:
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            loop.add_signal_handler(sig, _stopper(stop, report, name))
    workers = [make_worker(engine, topology, topology.nodes[n], address, settings)
               for n in nodes]
    report.stats = {w.node.name: w.stats for w in workers}
    started = last_tick = time.monotonic()
    try:
        for w in workers:
            await w.start()
        tasks = [asyncio.create_task(w.run(stop), name=f"node {w.node.name}") for w in workers]
        while not stop.is_set():
            elapsed = time.monotonic() - started
            if seconds is not None and elapsed >= seconds:
                break
            if any(t.done() for t in tasks):
                break  # a worker failed: stop the others, then raise its error below
            if until is not None and until(report.stats):
                break
            wait = 0.1 if until is not None else 1.0
            if seconds is not None:
                wait = min(wait, max(0.0, seconds - elapsed))
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
            now = time.monotonic()
            if tick is not None and now - last_tick >= 1.0:
                last_tick = now
                tick(now - started, report.stats)
        stop.set()
        await asyncio.gather(*tasks)
    finally:
        for w in workers:
            with contextlib.suppress(Exception):
                await w.close()
        if signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
    report.seconds = time.monotonic() - started
    return report


def _stopper(stop: asyncio.Event, report: RunReport, name: str) -> Callable[[], None]:
    def handler() -> None:
        report.stopped_by = name
        stop.set()
    return handler


def run(topology: Topology, *, broker: str | None = None, nodes: Sequence[str] | None = None,
        seconds: float | None = None, settings: EngineSettings | None = None,
        tick: Tick | None = None, engine: str = "kafka") -> RunReport:
    """Prepare and run ``topology`` (starting an embedded broker if none is configured)."""
    selected = select_nodes(topology, nodes)
    worker_class(engine)  # an unknown engine fails before anything starts
    previous = signal.signal(signal.SIGTERM, stop_before_start)
    try:
        with broker_for(broker) as address:
            prepare(topology, address)
            signal.signal(signal.SIGTERM, previous)  # the event loop's handler takes over
            return asyncio.run(run_nodes(topology, address, selected, seconds, settings, tick,
                                         engine=engine))
    finally:
        signal.signal(signal.SIGTERM, previous)


def stop_before_start(signum: int, frame: object) -> None:
    # SIGTERM while the broker starts or topics are created: unwind (stopping the embedded
    # broker) and exit 0, as a stop during the run does.
    raise SystemExit(0)
