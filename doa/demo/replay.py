"""The demo behind the README's first command: a topology's demo source, run, summarised.

A topology module may define ``demo_source(n: int, seed: int)`` yielding ``(stream, record)``
pairs (a record may be raw bytes, to show dead letters), published as fast as they come, or
``(stream, record, timestamp_ms)`` triples, *replayed live*: each when the wall clock has
moved as far as its timestamp did (the timestamps set the rate), with its timestamp moved to
now (plus ``LEAD_MS``). A learner merges its inputs by these timestamps: they, not the moment
a record happens to be published, say which label comes before which features.

A topology with learners gets a live view (:mod:`doa.demo.live`: node rates, rolling accuracy
or a regressor's mean absolute error, versions, drift and model events) and a summary: that score
around each ``drift_points(n)`` point, the detection delay, what the learner did. Others get the
stream table.
"""

from __future__ import annotations

import contextlib
import dataclasses
import multiprocessing
import os
import pickle
import queue
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from doa.errors import DoaError
from doa.topology.loader import load

# Record timestamps of a live replay lead the wall clock by this much (outputs carry their
# input's event time whatever the lag: the lead changes nothing downstream).
LEAD_MS = 2_000
MAX_IDLE_MS = 250  # see demo_settings
READY_TIMEOUT_S = 60.0  # a live replay waits at most this long for the nodes to start
MEMORY_CHUNK = 256  # memory demo with learners: run the nodes after every this many records

Item = tuple[Any, ...]  # (stream, record) or (stream, record, timestamp_ms)


def load_demo(spec: str, n: int, seed: int = 7) -> tuple[ModuleType, Any, list[Item]]:
    """The module and topology named by ``spec``, and its demo source's ``n`` records."""
    module, topology = load(spec)
    source = getattr(module, "demo_source", None)
    if source is None:
        raise DoaError(f"{spec!r} defines no demo_source(n, seed) to publish from")
    return module, topology, list(source(n, seed))


def drift_points(module: ModuleType, n: int) -> list[int]:
    """The module's ``drift_points(n)``, if it has one."""
    points = getattr(module, "drift_points", None)
    return sorted(int(p) for p in points(n)) if callable(points) else []


def run_memory_demo(spec: str, n: int, console: Console) -> None:
    """Run the demo in the in-memory harness and print what flowed."""
    from doa.demo.live import Track, roles
    from doa.demo.summary import summary
    from doa.testing import Clock, Harness

    module, topology, items = load_demo(spec, n)
    timed = any(len(item) > 2 for item in items)
    # Timestamped sources keep their event time on every output (a clock at 0 never wins
    # max(now, input time)); others get a clock moving 1 ms per record.
    harness = Harness(topology, clock=Clock(0 if timed else 1_700_000_000_000))
    watched = roles(topology)
    published: dict[str, int] = {}
    for i, item in enumerate(items):
        stream, record = item[0], item[1]
        harness.publish(stream, [record], timestamps=[item[2]] if len(item) > 2 else None)
        published[stream] = published.get(stream, 0) + 1
        if not timed:
            harness.clock.advance(1)
        if watched and i % MEMORY_CHUNK == MEMORY_CHUNK - 1:
            harness.run()  # drift events reach the learner while the data still flows
    harness.run()
    console.print(f"[bold]{topology.name}[/bold] in memory: published "
                  + ", ".join(f"{v} to {k}" for k, v in published.items()))
    console.print(flow_table(topology, {s: sum(len(p) for p in parts)
                                        for s, parts in harness.logs.items()}))
    if watched:
        track = Track(watched)
        for role in ("outcome", "unmatched", "drift", "model"):
            for event in (e for s, r in watched.items() if r == role
                          for e in harness.records(s)):
                track.add(event)
        for renderable in summary(track, drift_points(module, n), _positions(items),
                                  rate=getattr(module, "RATE", None)):
            console.print(renderable)
    else:
        show_samples(console, topology, {s: harness.records(s)[-3:] for s in topology.streams
                                         if not topology.readers(s) and any(harness.logs[s])})


def flow_table(topology: Any, counts: dict[str, int]) -> Table:
    """A table of every stream: schema, writers, readers, records."""
    table = Table(title="streams")
    for col in ("stream", "schema", "written by", "read by", "records"):
        table.add_column(col, justify="right" if col == "records" else "left")
    for s in topology.streams.values():
        writers = ("every node" if s.name == topology.dead_letters.name
                   else ", ".join(topology.writers(s.name)) or "(services)")
        table.add_row(s.name, s.schema, writers,
                      ", ".join(topology.readers(s.name)) or "-", str(counts.get(s.name, 0)))
    return table


def show_samples(console: Console, topology: Any, samples: dict[str, list[Any]]) -> None:
    for stream, events in samples.items():
        console.print(f"last records of [bold]{stream}[/bold]:")
        for e in events:
            shown = {k: v for k, v in e.items() if k != "raw"}
            console.print(f"  {shown}", markup=False)


class Watcher(threading.Thread):
    """A daemon thread reading the streams of a :class:`doa.demo.live.Track` into it, from the
    beginning."""

    def __init__(self, track: Any, topology: Any, address: str) -> None:
        super().__init__(name="doa-live-watcher", daemon=True)
        self.track, self.topology, self.address = track, topology, address
        self.done = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        from doa.client import Subscriber

        try:
            with Subscriber(list(self.track.streams), broker=self.address,
                            topology=self.topology, from_beginning=True, idle_timeout_s=0.2,
                            on_error="skip") as sub:
                while True:
                    last = self.done.is_set()
                    for event in sub:  # until the streams are idle for 0.2 s
                        self.track.add(event)
                    if last:
                        break
        except BaseException as exc:  # shown by the demo, which goes on without live data
            self.failure = exc

    def stop(self, timeout: float = 10.0) -> None:
        """Read what is left (until the streams are idle for 0.2 s) and stop."""
        self.done.set()
        self.join(timeout)


def replay(address: str, items: Sequence[Item], *, lead_ms: int, ready: Any, stop: Any,
           sent: Any, waiting: Any, parent: int | None = None) -> dict[str, int]:
    """Publish ``items`` to the broker; the records published to each stream.

    Pairs go out as fast as they come. Triples are replayed live, paced by their timestamps
    and shifted to now + ``lead_ms``; after the first one, ``ready.is_set()`` must say the
    nodes took it (at most ``READY_TIMEOUT_S``) before the rest follows, so the live view's
    rates start when the nodes do. (A label whose features lag is held by its learner until
    they come: nothing depends on this wait.) ``stop`` (an Event) ends
    it early; ``sent.value`` and ``waiting.value`` are progress for the parent process,
    whose pid is ``parent``: the replay ends if that process is gone.
    """
    from doa.client import Publisher

    publishers: dict[str, Publisher] = {}
    published: dict[str, int] = {}
    start, base, shift = time.time(), 0, 0
    try:
        for i, item in enumerate(items):
            if stop.is_set() or (parent is not None and i % 256 == 0
                                 and os.getppid() != parent):
                break
            stream, record = item[0], item[1]
            pub = publishers.get(stream)
            if pub is None:  # the schema comes from the registry: `prepare` registered it
                pub = publishers[stream] = Publisher(stream, broker=address, name="demo")
            if isinstance(record, (bytes, bytearray)):
                pub.send_raw(bytes(record))
            elif len(item) > 2:
                if i <= 1:  # (re)start the clock: now is this item's time (plus the lead)
                    start, base = time.time(), item[2]
                    shift = int(start * 1000) + lead_ms - base
                wait = start + (item[2] - base) / 1000 - time.time()
                if wait > 0.002 and stop.wait(wait):
                    break
                pub.send(record, timestamp_ms=item[2] + shift)
                if i == 0:
                    pub.flush()
                    waiting.value = 1
                    deadline = time.monotonic() + READY_TIMEOUT_S
                    while not ready.is_set() and time.monotonic() < deadline:
                        if stop.wait(0.02):
                            break
                    waiting.value = 0
            else:
                pub.send(record)
            published[stream] = published.get(stream, 0) + 1
            sent.value += 1
    finally:
        for pub in publishers.values():
            pub.close()
    return published


def _source_main(address: str, path: str, lead_ms: int, ready: Any, stop: Any,
                 sent: Any, waiting: Any, results: Any, parent: int) -> None:
    try:
        with open(path, "rb") as f:
            items = pickle.load(f)
        results.put((replay(address, items, lead_ms=lead_ms, ready=ready, stop=stop,
                            sent=sent, waiting=waiting, parent=parent), None))
    except BaseException as exc:
        results.put(({}, f"{type(exc).__name__}: {exc}"))


class SourceProcess:
    """The demo's source service: :func:`replay` in a process of its own.

    kafka-python encodes and batches in Python: publishing from a thread of the nodes'
    process delays them (the fraud demo's feature node lagged the source by 80-150 ms, 99th
    percentile 300-500 ms; from another process by ~50 ms, 200-270 ms).
    """

    def __init__(self, address: str, items: Sequence[Item], lead_ms: int = LEAD_MS) -> None:
        ctx = multiprocessing.get_context("spawn")  # no fork of a process with threads
        self.total = len(items)
        self.ready = ctx.Event()  # set by the demo once the nodes took the first record
        self.stop = ctx.Event()
        self.sent = ctx.RawValue("q", 0)
        self.waiting = ctx.RawValue("b", 0)
        self.results = ctx.Queue()
        # The items go through a file: a pipe to a child that died early would block.
        fd, self.path = tempfile.mkstemp(prefix="doa-demo-", suffix=".pickle")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(list(items), f, protocol=5)
        self.process = ctx.Process(target=_source_main, name="doa-demo-source", daemon=True,
                                   args=(address, self.path, lead_ms, self.ready, self.stop,
                                         self.sent, self.waiting, self.results, os.getpid()))

    def start(self) -> None:
        self.process.start()

    def is_alive(self) -> bool:
        return self.process.is_alive()

    def finish(self, timeout: float = 30.0) -> dict[str, int]:
        """Stop publishing; the records published to each stream (raise if it failed)."""
        self.stop.set()
        try:
            published, failure = self.results.get(timeout=timeout if self.is_alive() else 1)
        except queue.Empty:
            published, failure = {}, f"it ended with exit code {self.process.exitcode}"
        self.process.join(5)
        if self.process.is_alive():
            self.process.terminate()
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if failure:
            raise DoaError(f"demo source: {failure}")
        return published  # type: ignore[no-any-return]

    def progress(self) -> str:
        return (f"published {self.sent.value:,} of {self.total:,} records"
                + (" (waiting for the nodes to start)" if self.waiting.value else ""))


def run_broker_demo(spec: str, n: int, seconds: float, broker: str | None,
                    console: Console) -> None:
    """Run the demo over a broker (embedded unless one is configured) and show what flowed."""
    import asyncio
    import gc

    from doa.demo.live import LiveView, Track, clock_from, roles
    from doa.demo.summary import summary
    from doa.engines.launch import broker_for, prepare, run_nodes

    module, topology, items = load_demo(spec, n)
    watched = roles(topology)
    timed = [item[2] for item in items if len(item) > 2]
    with broker_for(broker) as address:
        pace = f" over {(max(timed) - min(timed)) / 1000:.0f} s" if timed else ""
        console.print(f"broker {address}; topology [bold]{topology.name}[/bold]: publishing "
                      f"{len(items):,} demo records{pace} while the nodes run for at most "
                      f"{seconds:.0f} s")
        prepare(topology, address)
        source = SourceProcess(address, items)
        first = topology.readers(items[0][0]) if items else []
        track = Track(watched, clock=clock_from(time.monotonic()))
        watcher = Watcher(track, topology, address) if watched else None
        view = LiveView(topology, track, console, seconds, source.progress) if watched \
            else None

        def tick(elapsed: float, stats: dict[str, Any]) -> None:
            if all(stats[name].records_in > 0 for name in first):
                source.ready.set()
            if view is not None:
                view.tick(elapsed, stats)
            else:
                console.print(_tick(elapsed, stats), markup=False)

        source.start()
        if watcher is not None and view is not None:
            watcher.start()
            view.start()
        # What the imports made lives as long as the process: keep it out of the cyclic
        # GC's full collections (~0.3 s pauses of every node, without this).
        gc.collect()
        gc.freeze()
        try:
            report = asyncio.run(run_nodes(topology, address, list(topology.nodes),
                                           seconds=seconds, settings=demo_settings(), tick=tick,
                                           until=Idle(source)))
        finally:
            if view is not None:
                view.stop()
            published = source.finish()
        if watcher is None or view is None:
            _show_flow(console, topology, address, published, report)
            return
        watcher.stop()
        if watcher.failure is not None:
            console.print(f"[yellow]live view stopped[/yellow]: {watcher.failure}")
        console.print(f"{source.progress()} in {report.seconds:.1f} s")
        for renderable in summary(track, drift_points(module, n), _positions(items),
                                  report.stats, topology, view.peaks,
                                  rate=getattr(module, "RATE", None), means=view.means):
            console.print(renderable)


def demo_settings() -> Any:
    """``DOA_*`` settings, and a merge that waits up to ``MAX_IDLE_MS`` for features before
    it releases a label alone: one process's nodes take turns, so the feature node may lag
    by a few hundred ms (a learner holds an early label until its features come anyway).
    """
    from doa.engines import EngineSettings

    settings = EngineSettings.from_env()
    if "DOA_MAX_IDLE_MS" in os.environ:
        return settings
    return dataclasses.replace(settings, max_idle_ms=MAX_IDLE_MS)


class Idle:
    """``until`` for :func:`doa.engines.launch.run_nodes`: the source is done, the nodes
    took records,
    and then none for ``quiet`` seconds."""

    def __init__(self, source: Any, quiet: float = 2.0) -> None:
        self.source, self.quiet = source, quiet
        self.taken, self.since = -1, time.monotonic()

    def __call__(self, stats: dict[str, Any]) -> bool:
        taken = sum(s.records_in for s in stats.values())
        now = time.monotonic()
        if self.source.is_alive() or taken != self.taken or not taken:
            self.taken, self.since = taken, now
            return False
        return now - self.since >= self.quiet


def _show_flow(console: Console, topology: Any, address: str, published: dict[str, int],
               report: Any) -> None:
    """Read every stream back and show what flowed (topologies without learners)."""
    from doa.client import Subscriber

    counts: dict[str, int] = {}
    samples: dict[str, list[Any]] = {}
    with Subscriber(list(topology.streams), broker=address, topology=topology,
                    from_beginning=True, idle_timeout_s=1.5, on_error="skip") as sub:
        for event in sub:
            counts[event.stream] = counts.get(event.stream, 0) + 1
            if not topology.readers(event.stream):
                samples.setdefault(event.stream, []).append(event)
        undecodable = sub.errors
    console.print("published " + ", ".join(f"{v} to {k}" for k, v in published.items()))
    console.print(flow_table(topology, counts))
    if undecodable:
        console.print(f"{undecodable} published records could not be decoded (the demo "
                      f"source sends some on purpose): see {topology.dead_letters.name}")
    show_samples(console, topology, {s: e[-3:] for s, e in samples.items()})
    for name, st in report.stats.items():
        console.print(f"node {name}: {st.records_in} in, {st.records_out} out, "
                      f"{st.dead_letters} dead letters, {st.snapshots} snapshots")


def _positions(items: Sequence[Item]) -> int:
    """How many positions (learner outcomes can have) the source spans: its largest stream."""
    return max(Counter(item[0] for item in items).values(), default=0)


def _tick(elapsed: float, stats: dict[str, Any]) -> str:
    return f"[{elapsed:5.1f}s] " + " | ".join(
        f"{k}: in {s.records_in} out {s.records_out} dead {s.dead_letters}"
        for k, s in stats.items())
