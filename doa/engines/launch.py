"""Run a topology's nodes on a broker: the code behind ``doa run`` (and the demo, and tests).

Without a broker address (``--broker`` or ``DOA_BROKER``) an embedded broker is started and
stopped with the run. Topics are created with their declared partitions, schemas registered
(refusing incompatible changes), then one worker per selected node runs in one event loop
until the time is up or SIGTERM/SIGINT arrives; then each worker finishes its batch, flushes,
snapshots, commits and leaves its group, within a grace period (``DOA_SHUTDOWN_GRACE_S``,
10 s): past it the run ends anyway and :attr:`RunReport.incomplete` says what was left undone
(a second SIGTERM/SIGINT ends the process at once). While the broker is unreachable a status
line says so every 10 s (:mod:`doa.engines.outage`); the nodes wait for it and carry on when it is
back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import signal
import sys
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from doa.cluster.admin import ensure_topics, topology_topics
from doa.cluster.reach import check_reachable, reachable
from doa.engines import EngineSettings, NodeStats, worker_class
from doa.engines.chain import link
from doa.engines.outage import BrokerWatch, Say, shutdown_grace_s, unfinished
from doa.engines.signals import catch_signals, stop_before_start
from doa.errors import DoaError
from doa.local.embedded import EmbeddedBroker, configured_broker
from doa.observe import observe
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

Tick = Callable[[float, dict[str, NodeStats]], None]
T = TypeVar("T")


@dataclass
class RunReport:
    """What a run did, per node."""

    broker: str
    seconds: float
    stats: dict[str, NodeStats] = field(default_factory=dict)
    stopped_by: str = "time"
    incomplete: str | None = None  # what the stop could not complete (None: everything)


@contextlib.contextmanager
def broker_for(address: str | None) -> Iterator[str]:
    """Yield ``address`` if one is configured, else the address of a fresh embedded broker."""
    configured = configured_broker(address)
    if configured:
        yield configured
        return
    from doa.cluster import signing

    with EmbeddedBroker() as broker:
        signing.own_broker()  # its state dies with it: no warning about unsigned state
        yield broker.address


def prepare(topology: Topology, address: str, runs: Sequence[str] = (),
            say: Say | None = None) -> list[str]:
    """Check the topology, create its topics, register its schemas; new schema versions.

    An unreachable broker is a one-line :class:`doa.cluster.reach.BrokerUnreachable` within
    seconds (the admin client raised aiokafka's ``KafkaConnectionError`` after retrying).
    A stream that a node of another topology described on the broker writes too is refused,
    one line per stream, unless declared ``shared=True``, and so is a schema version that a
    node running there cannot read (:func:`doa.catalog.readers.refuse_running_problems`).
    A live process there running one of the nodes ``runs`` with other step code is one
    ``warning:`` line to ``say`` (:func:`doa.catalog.readers.other_code`), not a refusal."""
    from doa.catalog.readers import refuse_running_problems
    from doa.cluster.reach import check_reachable
    from doa.cluster.registry import register

    topology.check()
    check_reachable(address)
    warnings = refuse_running_problems(topology, address, runs)
    asyncio.run(ensure_topics(address, topology_topics(topology)))
    registered = register(address, topology)  # a refused schema: no warning about it first
    for line in warnings:  # (walk 7: "will not see that field" of a version then refused)
        (say or _log_status)(line)
    return registered


def select_nodes(topology: Topology, nodes: Sequence[str] | None) -> list[str]:
    if not nodes:
        return list(topology.nodes)
    unknown = [n for n in nodes if n not in topology.nodes]
    if unknown:
        raise DoaError(f"topology {topology.name!r} has no node {', '.join(map(repr, unknown))}"
                       f" (nodes: {', '.join(topology.nodes)})")
    return list(nodes)


@dataclass(frozen=True)
class RunOptions:
    """How :func:`run_nodes` runs and when it stops; every field has a default.

    Parameters
    ----------
    seconds : stop after this many seconds (None: run until stopped)
    settings : the engine's client settings (None: :class:`doa.engines.EngineSettings`)
    engine : which engine runs the nodes (``kafka`` or ``faust``)
    tick : called every second with the elapsed seconds and each node's stats
    until : checked ten times a second with the stats; stop when it returns True
    stop : set it to stop the run (None: a fresh event)
    signals : SIGTERM/SIGINT stop the run (only in the main thread)
    say : receives the broker status lines (None: a WARNING log)
    grace_s : the stop's bound in seconds (None: :func:`doa.engines.outage.shutdown_grace_s`)
    metrics_port : serve Prometheus ``/metrics`` on it (None: ``DOA_METRICS_PORT``, else off)

    Examples
    --------
    >>> RunOptions(seconds=5).grace({"DOA_SHUTDOWN_GRACE_S": "3"})
    3.0
    >>> RunOptions(grace_s=1.5).grace()
    1.5
    """

    seconds: float | None = None
    settings: EngineSettings | None = None
    engine: str = "kafka"
    tick: Tick | None = None
    until: Callable[[dict[str, NodeStats]], bool] | None = None
    stop: asyncio.Event | None = None
    signals: bool = True
    say: Say | None = None
    grace_s: float | None = None
    metrics_port: int | None = None

    def grace(self, environ: Mapping[str, str] | None = None) -> float:
        """``grace_s``, else the shutdown grace the environment sets."""
        return shutdown_grace_s(environ) if self.grace_s is None else self.grace_s


async def run_nodes(topology: Topology, address: str, nodes: Sequence[str],
                    options: RunOptions | None = None, **keywords: Any) -> RunReport:
    """Run ``nodes`` until ``seconds`` pass, ``stop`` is set, SIGTERM/SIGINT, or ``until``.

    ``options`` says how (:class:`RunOptions`); ``keywords`` set its fields one by one
    (``run_nodes(t, address, ["count"], seconds=60, signals=False)``), over ``options``.
    ``until(stats)`` is checked ten times a second; tests use it to stop once every input
    has been read.
    """
    from doa.engines import make_worker

    o = dataclasses.replace(options or RunOptions(), **keywords)
    stop = o.stop or asyncio.Event()
    report = RunReport(address, 0.0)
    grace = o.grace()
    workers = [make_worker(o.engine, topology, topology.nodes[n], address, o.settings)
               for n in nodes]
    report.stats = {w.node.name: w.stats for w in workers}
    for up, stream, down in link(workers, (o.settings or EngineSettings.from_env()).chain != 0):
        log.info("node %s hands %s to node %s in this process", up, stream, down)
    say = o.say or _log_status
    observers = observe(topology, address, workers, port=o.metrics_port, say=say)
    watch = BrokerWatch(address, report.stats, say)
    watcher = asyncio.create_task(watch.run(), name="broker watch")
    restore = catch_signals(stop, report, say, grace) if o.signals else None
    started = time.monotonic()
    tasks: list[asyncio.Task[None]] = []
    before = asyncio.all_tasks()
    try:
        tasks, done = await _run_then_stop(workers, stop, started, o, report, grace)
        report.incomplete = await _left_undone(report, watch, done, grace)
    finally:
        watcher.cancel()
        if o.engine == "faust":
            from doa.engines.faust_app import abandon_leftovers

            await abandon_leftovers(before)
        observers.close(sys.exc_info()[1] or _failure(tasks))  # OpenLineage FAIL or COMPLETE
        if restore is not None:
            restore()
    report.seconds = time.monotonic() - started
    _raise_failure(tasks)
    return report


def _raise_failure(tasks: list[asyncio.Task[None]]) -> None:
    """Raise the error of the first worker that failed, if one did."""
    error = _failure(tasks)
    if error is not None:
        raise error


def _failure(tasks: list[asyncio.Task[None]]) -> BaseException | None:
    """The error of the first worker that failed (None: none did)."""
    for t in tasks:
        if t.done() and not t.cancelled() and t.exception() is not None:
            return t.exception()
    return None


async def _run_then_stop(workers: list[Any], stop: asyncio.Event, started: float,
                         options: RunOptions, report: RunReport, grace: float
                         ) -> tuple[list[asyncio.Task[None]], bool]:
    """Start the workers, run them until a stop condition, then wind them down within
    ``grace``. Returns their tasks and whether the wind-down ended in time."""
    tasks: list[asyncio.Task[None]] = []
    thresholds = gc.get_threshold()
    try:
        if await _start(workers, stop):
            thresholds = _freeze_heap()
            tasks = [asyncio.create_task(w.run(stop), name=f"node {w.node.name}")
                     for w in workers]
            await _wait(tasks, stop, started, options, report)
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        stop.set()
        done = await _wind_down(tasks, workers, grace)
    return tasks, done


# Allocations (less deallocations) of tracked objects between young collections while a run
# holds its batches; CPython's default is 700. Measured on the peers bench's kernel -> learner
# pair (20,000 records): the default ran 1,111 collections (142 ms of GC, 7 µs/record) that
# found 58 unreachable objects in all; at 50,000, two (11 ms). The hot path makes almost no
# cyclic garbage, so the collections only walked live batches and the learners' pending state.
YOUNG_THRESHOLD = 50_000


def _freeze_heap() -> tuple[int, int, int]:
    """Move what start-up made (models, compiled code, clients) out of the cyclic GC's
    reach until the run ends (the per-record tuples and dicts otherwise set off full
    collections that walk that whole heap: ~100 ms each for a River learner node), and
    collect the young generation less often (:data:`YOUNG_THRESHOLD`). Returns the
    thresholds to restore."""
    gc.collect()
    gc.freeze()
    before = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, before[1], before[2])
    return before


async def _left_undone(report: RunReport, watch: BrokerWatch, done: bool,
                       grace: float) -> str | None:
    """The one line saying what the stop could not complete, or None if it completed."""
    leftovers = any(s.outputs_unacked or s.unsnapshotted for s in report.stats.values())
    if done and not leftovers:
        return None
    gone = watch.unreachable or not await asyncio.get_running_loop().run_in_executor(
        None, reachable, report.broker, 1.0)
    return unfinished(report.broker, report.stats, gone, None if done else grace)


async def _start(workers: list[Any], stop: asyncio.Event) -> bool:
    """Start the workers one by one; False if ``stop`` came first (the broker may be gone)."""
    async def start_all() -> None:
        for w in workers:
            await w.start()

    starting = asyncio.create_task(start_all(), name="start nodes")
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if not starting.done():
        starting.cancel()
        await asyncio.wait({starting}, timeout=2.0)
        return False
    starting.result()  # a start that failed: its error
    return True


async def _wait(tasks: list[asyncio.Task[None]], stop: asyncio.Event, started: float,
                options: RunOptions, report: RunReport) -> None:
    """Until the time is up (``seconds`` after ``started``), ``stop`` is set, ``until`` holds
    or a worker ends (fails)."""
    seconds, until, tick = options.seconds, options.until, options.tick
    last_tick = started
    while not stop.is_set():
        elapsed = time.monotonic() - started
        if seconds is not None and elapsed >= seconds:
            return
        if any(t.done() for t in tasks):
            return  # a worker failed: stop the others, then raise its error
        if until is not None and until(report.stats):
            return
        wait = 0.1 if until is not None else 1.0
        if seconds is not None:
            wait = min(wait, max(0.0, seconds - elapsed))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
        now = time.monotonic()
        if tick is not None and now - last_tick >= 1.0:
            last_tick = now
            tick(now - started, report.stats)


async def _wind_down(tasks: list[asyncio.Task[None]], workers: list[Any],
                     grace: float) -> bool:
    """Let the workers finish their batch, flush, snapshot, commit and close within
    ``grace`` seconds; past it cancel them (they leave without the broker). True: in time."""
    async def finish() -> None:
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in workers:  # those whose run never started (a stop during start)
            with contextlib.suppress(Exception):
                await w.close()

    finishing = asyncio.create_task(finish(), name="stop nodes")
    done, _ = await asyncio.wait({finishing}, timeout=grace)
    if done:
        return True
    for t in (*tasks, finishing):
        t.cancel()
    await asyncio.wait({*tasks, finishing}, timeout=1.0)
    return False


def _log_status(line: str) -> None:
    log.warning("%s", line)


def run(topology: Topology, *, broker: str | None = None, nodes: Sequence[str] | None = None,
        seconds: float | None = None, settings: EngineSettings | None = None,
        tick: Tick | None = None, engine: str = "kafka", say: Say | None = None,
        metrics_port: int | None = None) -> RunReport:
    """Prepare and run ``topology`` (starting an embedded broker if none is configured).

    A configured broker that does not answer is a
    :class:`doa.cluster.reach.BrokerUnreachable` within
    seconds. ``say`` gets one-line notices: the embedded broker's address as soon as it
    listens, and the broker status while it is unreachable.
    """
    selected = select_nodes(topology, nodes)
    worker_class(engine)  # an unknown engine fails before anything starts
    say = say or _log_status
    configured = configured_broker(broker)
    if configured:
        check_reachable(configured, timeout_s=3.0)
    previous = signal.signal(signal.SIGTERM, stop_before_start)
    try:
        with broker_for(broker) as address:
            if not configured:
                say(f"embedded broker on {address}; publish into it with --broker {address} "
                    f"(or export DOA_BROKER={address})")
            prepare(topology, address, selected, say)
            # SIGTERM keeps unwinding with exit 0 until run_nodes installs its own handler
            # (a default handler here let a stop during start-up kill the process: -15).
            from doa.catalog.publish import announced  # _doa_topologies: what runs here

            with announced(topology, address, selected, engine, tick) as tick:
                return run_bounded(run_nodes(topology, address, selected, RunOptions(
                    seconds=seconds, settings=settings, engine=engine, tick=tick, say=say,
                    metrics_port=metrics_port)))
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_bounded(main: Coroutine[Any, Any, T], cleanup_s: float = 1.0) -> T:
    """``asyncio.run(main)``, except that what is still running after ``main`` (a client
    waiting on a broker that is gone) gets ``cleanup_s`` seconds to end, not forever."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            left = asyncio.all_tasks(loop)
            for t in left:
                t.cancel()
            if left:
                loop.run_until_complete(asyncio.wait(left, timeout=cleanup_s))
            loop.run_until_complete(asyncio.wait([loop.create_task(
                loop.shutdown_asyncgens())], timeout=cleanup_s))
        finally:
            asyncio.set_event_loop(None)
            loop.close()
