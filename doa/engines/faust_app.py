"""What doa reaches into in a Faust app, and what an app needs around it (no faust import).

Faust keeps its aiokafka consumer in a thread of its own (mode's ``ServiceThread``):
:func:`partition_counts`, :func:`join_error` and :func:`short_fetch_wait` read or adjust it;
:func:`abandon_app` gives up a stop that waits on a broker that is gone, :func:`abandon_leftovers`
what an app left running after its nodes stopped; :func:`free_port` and
:func:`fresh_datadir` keep two apps in one machine apart. :mod:`doa.engines.faust` (the only
module importing faust) and :mod:`doa.engines.faust_node` use them.

Examples
--------
>>> partition_counts(object(), ["events"])  # no consumer yet
{}
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterable
from typing import Any

from doa.cluster.fetchwait import FetchWait, apply_aiokafka
from doa.errors import DoaError


def partition_counts(app: Any, streams: Iterable[str]) -> dict[str, int]:
    """Each of ``streams``' partitions as the metadata of ``app``'s consumer has them (0:
    unknown, or no consumer yet). Faust's consumer lives in a thread of its own; its aiokafka
    client replaces its metadata maps whole on each refresh, so they can be read from here."""
    consumer = getattr(getattr(getattr(app, "consumer", None), "_thread", None), "_consumer",
                       None)
    if consumer is None:
        return {}
    counts: dict[str, int] = {}
    for stream in streams:
        try:
            counts[stream] = len(consumer.partitions_for_topic(stream) or ())
        except Exception:  # a refresh under way: the next look sees it
            counts[stream] = 0
    return counts


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens on it, else a port the system says is free."""
    for port in (preferred, 0):
        with socket.socket() as probe:
            try:
                probe.bind(("0.0.0.0", port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise DoaError("no free TCP port for the Faust web server")


def fresh_datadir() -> str:
    """A new temporary directory (``doa-faust-PID-*``), removed at the exit of the process."""
    path = tempfile.mkdtemp(prefix=f"doa-faust-{os.getpid()}-")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


_LIBRARIES = tuple(f"{os.sep}{name}{os.sep}" for name in ("faust", "mode", "aiokafka"))


async def abandon_app(stopping: asyncio.Future[Any], within_s: float = 1.0) -> None:
    """Cancel a Faust app's stop and the library tasks it waits on, until they end.

    mode stops each child service under ``asyncio.shield`` and goes on to the next one on a
    cancel, so one cancel is not enough: with the broker gone every child waits on it.
    """
    await _cancel_until_done(lambda t: t is stopping or _library_task(t), within_s)


async def abandon_leftovers(spared: set[asyncio.Task[Any]], within_s: float = 1.0) -> None:
    """Cancel, until they end, the tasks of faust, mode and aiokafka still running that are
    not in ``spared`` (those that ran before the nodes started: a caller's own).

    After the Faust engine's nodes have stopped, a service task of an app can still wait on
    the app's consumer thread, which has stopped; ``asyncio.run`` then waits for it forever
    after cancelling it once (a CI run under load hung there after a node stopped on refused
    outputs)."""
    await _cancel_until_done(lambda t: t not in spared and _library_task(t), within_s)


async def _cancel_until_done(which: Callable[[asyncio.Task[Any]], bool],
                             within_s: float) -> None:
    me = asyncio.current_task()
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        left = [t for t in asyncio.all_tasks() if t is not me and not t.done() and which(t)]
        if not left:
            return
        for t in left:
            t.cancel()
        await asyncio.wait(left, timeout=0.01)


def _library_task(task: asyncio.Task[Any]) -> bool:
    code = getattr(task.get_coro(), "cr_code", None)
    return code is not None and any(lib in code.co_filename for lib in _LIBRARIES)


def join_error(app: Any) -> BaseException | None:
    """A crash of the app, or the fatal error aiokafka keeps for the next poll of the consumer."""
    if app.crashed:
        return app.crash_reason or RuntimeError("the Faust app crashed")
    consumer = getattr(getattr(app.consumer, "_thread", None), "_consumer", None)
    coordinator = getattr(consumer, "_coordinator", None)
    error = getattr(coordinator, "_pending_exception", None)
    return error if isinstance(error, BaseException) else None


def short_fetch_wait(app: Any, wait_ms: int) -> None:
    """Faust's aiokafka driver hard-codes fetch_max_wait_ms=1500; use doa's (10 ms), and let
    it stretch while the embedded broker starves the consumer (:mod:`doa.cluster.fetchwait`),
    after each fetch of Faust's consumer thread, in that thread: under CPU load a partition
    that fell behind the others deep in a stream of one-record batches was left at 4,060 of
    15,000 with a 10 ms wait, for good."""
    thread = getattr(app.consumer, "_thread", None)
    fetcher = getattr(getattr(thread, "_consumer", None), "_fetcher", None)
    if thread is None or fetcher is None or not hasattr(fetcher, "_fetch_max_wait_ms"):
        return
    fetcher._fetch_max_wait_ms = wait_ms
    fetch_records = getattr(thread, "_fetch_records", None)
    if fetch_records is None:
        return
    wait = FetchWait(wait_ms)

    async def stretching(consumer: Any, *args: Any, **kwargs: Any) -> Any:
        records = await fetch_records(consumer, *args, **kwargs)
        apply_aiokafka(consumer, wait, bool(records))
        return records

    thread._fetch_records = stretching
