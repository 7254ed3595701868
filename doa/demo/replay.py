"""The demo's broker side: a topology's demo source replayed into a broker, and read back.

A topology module may define ``demo_source(n: int, seed: int)`` yielding ``(stream, record)``
pairs (a record may be raw bytes, to show dead letters), published as fast as they come, or
``(stream, record, timestamp_ms)`` triples, *replayed live*: each when the wall clock has
moved as far as its timestamp did (the timestamps set the rate), with its timestamp moved to
now (plus ``LEAD_MS``). A learner merges its inputs by these timestamps: they, not the moment
a record happens to be published, say which label comes before which features.

:func:`replay` publishes them (``doa deploy --publish-demo`` calls it as it is),
:class:`SourceProcess` runs it in a process of its own for ``doa demo``, and :class:`Watcher`
reads the streams back into the live view (:mod:`doa.demo.live`). The demo itself, in memory
or over a broker, is :mod:`doa.demo.run`.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import tempfile
import threading
import time
from collections.abc import Sequence
from typing import Any

from doa.errors import DoaError

# Record timestamps of a live replay lead the wall clock by this much (outputs carry their
# input's event time whatever the lag: the lead changes nothing downstream).
LEAD_MS = 2_000
READY_TIMEOUT_S = 60.0  # a live replay waits at most this long for the nodes to start

Item = tuple[Any, ...]  # (stream, record) or (stream, record, timestamp_ms)


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
                if i <= 1:  # (re)start the pacing clock: now is this item's time
                    start, base = time.time(), item[2]
                if i == 0:  # one shift for all: the records keep their gaps in event time
                    shift = int(start * 1000) + lead_ms - base  # (walk 7: the first moved
                    # apart from the rest by the wait for the nodes, its delay_ms off by it)
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
