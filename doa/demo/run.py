"""The demo behind the README's first command: a topology's demo source, run, summarised.

The source's records (see :mod:`doa.demo.replay` for what a ``demo_source`` yields) go into
the in-memory harness (``--memory``) or, replayed live, into a broker while the nodes run.

A topology with learners gets a live view (:mod:`doa.demo.live`: node rates, rolling accuracy
or a regressor's mean absolute error, versions, drift and model events) and a summary: that score
around each ``drift_points(n)`` point, the detection delay, what the learner did. Others get the
stream table.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from rich.console import Console
from rich.table import Table

from doa.demo.replay import Item, SourceProcess, Watcher
from doa.errors import DoaError
from doa.topology.loader import load

MAX_IDLE_MS = 250  # see demo_settings
MEMORY_CHUNK = 256  # memory demo with learners: run the nodes after every this many records


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
                                           until=Idle(source, settled=_settled(
                                               topology, items, track))))
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
    took records, and then none for ``quiet`` seconds; while ``settled`` says some labels
    still owe their outcome, for ``unsettled`` seconds (a busy machine stalled a learner's
    fetches for more than 2 s: the demo ended with 1,000 of 12,000 labels not taken).

    >>> class Done:
    ...     def is_alive(self): return False
    >>> idle = Idle(Done(), quiet=0.0, settled=lambda: False, unsettled=3600.0)
    >>> idle({"n": NodeCounts(5)}), idle({"n": NodeCounts(5)})  # took 5, then none: owed
    (False, False)
    >>> idle.settled = lambda: True
    >>> idle({"n": NodeCounts(5)})
    True
    """

    def __init__(self, source: Any, quiet: float = 2.0,
                 settled: Callable[[], bool] | None = None, unsettled: float = 30.0) -> None:
        self.source, self.quiet, self.settled, self.unsettled = source, quiet, settled, unsettled
        self.taken, self.since = -1, time.monotonic()

    def __call__(self, stats: dict[str, Any]) -> bool:
        taken = sum(s.records_in for s in stats.values())
        now = time.monotonic()
        if self.source.is_alive() or taken != self.taken or not taken:
            self.taken, self.since = taken, now
            return False
        owed = self.settled is not None and not self.settled()
        return now - self.since >= (self.unsettled if owed else self.quiet)


@dataclasses.dataclass
class NodeCounts:
    """A node's ``records_in``, as :class:`Idle` reads it (its doctest)."""

    records_in: int


def _settled(topology: Any, items: Sequence[Item], track: Any) -> Callable[[], bool] | None:
    """Whether every label the source publishes has come back as a learner's outcome or an
    unmatched label (as the live view's ``track`` has read them); None: no learner."""
    labels = {about["labels"] for about in (n.spec.describe().get("streams", {})
                                            for n in topology.nodes.values())
              if isinstance(about.get("labels"), str)}
    owed = sum(1 for item in items if item[0] in labels)
    outcomes = [s for s, role in track.streams.items() if role == "outcome"]
    if not owed or not outcomes:
        return None

    def settled() -> bool:
        with track.lock:
            done = sum(track.counts[s] for s in outcomes) + sum(track.unmatched.values())
        return bool(done >= owed)
    return settled


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
