"""``doa ui``: a small local web app (aiohttp) over the catalog, the log and lineage.

Routes (everything is served by this process; the page loads nothing from anywhere else, and
its Content-Security-Policy forbids it to):

- ``/``, ``/static/...``: the page (``doa/ui/static/``: HTML, CSS, JS; no library);
- ``/api/catalog``: :func:`doa.catalog.collect` (run in a thread, cached :data:`MAX_AGE_S`
  seconds and shared by concurrent requests), the graph layout (:func:`doa.ui.graph.layout`)
  and the streams of drift and model-version events; with topology files, theirs only
  (:mod:`doa.ui.scope`) unless ``?all=1`` (or ``doa ui --all``), and the other topologies'
  names under ``scope``;
- ``/api/records?stream=S&n=N``: the last N records of S, decoded (:func:`doa.ui.reads.tail`);
- ``/api/events?n=N``: the last N drift and model-version events (:func:`doa.ui.reads.events`);
- ``/api/lineage?event=E``: the lineage of a record (:func:`doa.ui.reads.lineage`).

Every read of the broker first probes it (:func:`doa.cluster.reach.check_reachable`, within
:data:`PROBE_S` seconds), so a broker that is gone is an answer in seconds, not a client's
30 s bootstrap timeout; once it is back, the next request reads it again.

An error is a JSON object ``{"error": "one line"}`` with status 400 (a :class:`DoaError`:
the request names something that is not there), 503 (the broker is unreachable: the text of
:class:`~doa.cluster.reach.BrokerUnreachable`, as the CLI prints it) or 502 (anything else).

Examples
--------
>>> app = make_app("127.0.0.1:9092", collect=lambda: {"streams": [], "nodes": []})
>>> sorted(r.resource.canonical for r in app.router.routes() if r.method == "GET")
['/', '/api/catalog', '/api/events', '/api/lineage', '/api/records', '/static']
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from doa.cluster.reach import BrokerUnreachable, check_reachable
from doa.errors import DoaError
from doa.topology.topology import Topology
from doa.ui import reads
from doa.ui.graph import declared_nodes, layout
from doa.ui.scope import scoped

__all__ = ["CatalogCache", "make_app", "serve"]

STATIC = Path(__file__).resolve().parent / "static"
MAX_AGE_S = 2.0
PROBE_S = 2.0  # the most a request waits to learn that the broker is unreachable
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
T = TypeVar("T")

BROKER: web.AppKey[str] = web.AppKey("broker", str)
TOPOLOGIES: web.AppKey[tuple[Topology, ...]] = web.AppKey("topologies", tuple)
CACHE: web.AppKey[CatalogCache] = web.AppKey("cache", object)  # type: ignore[arg-type]
POOL: web.AppKey[ThreadPoolExecutor] = web.AppKey("pool", ThreadPoolExecutor)
SHOW_ALL: web.AppKey[bool] = web.AppKey("show_all", bool)


class CatalogCache:
    """The latest catalog, refreshed in a thread when older than ``max_age_s``.

    Concurrent callers wait for one refresh instead of starting their own.

    >>> calls = []
    >>> cache = CatalogCache(lambda: calls.append(1) or {"n": len(calls)}, 60.0)
    >>> async def twice(): return [await cache.get(), await cache.get()]
    >>> asyncio.run(twice()), len(calls)
    ([{'n': 1}, {'n': 1}], 1)
    """

    def __init__(self, fetch: Callable[[], dict[str, Any]], max_age_s: float = MAX_AGE_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._max_age = max_age_s
        self._clock = clock
        self._lock: asyncio.Lock | None = None
        self._value: dict[str, Any] | None = None
        self._at = 0.0

    async def get(self) -> dict[str, Any]:
        if self._lock is None:  # made on the loop that uses it
            self._lock = asyncio.Lock()
        asked = self._clock()
        async with self._lock:  # a refresh that ended while this caller waited serves it
            if self._value is None or (self._at < asked
                                       and self._clock() - self._at >= self._max_age):
                self._value = await asyncio.get_running_loop().run_in_executor(
                    None, self._fetch)
                self._at = self._clock()
            return self._value


def make_app(broker: str, topologies: Sequence[Topology] = (),
             collect: Callable[[], dict[str, Any]] | None = None,
             max_age_s: float = MAX_AGE_S, show_all: bool = False) -> web.Application:
    """The web app for ``broker``; ``collect`` replaces :func:`doa.catalog.collect` (tests).
    With ``topologies``, the page shows theirs only (:func:`doa.ui.scope.scoped`) unless
    ``show_all`` or the page's ``?all=1``."""
    if collect is None:
        from doa.catalog import collect as collect_catalog

        collect = functools.partial(_probed, broker, functools.partial(
            collect_catalog, broker, timeout_s=5.0))
    app = web.Application(middlewares=[_headers, _errors])
    app[BROKER] = broker
    app[TOPOLOGIES] = tuple(topologies)
    app[SHOW_ALL] = show_all
    app[CACHE] = CatalogCache(collect, max_age_s)
    app[POOL] = ThreadPoolExecutor(4, thread_name_prefix="doa-ui")
    app.on_cleanup.append(_shutdown_pool)
    app.router.add_get("/", _index)
    app.router.add_get("/api/catalog", _catalog)
    app.router.add_get("/api/records", _records)
    app.router.add_get("/api/events", _events)
    app.router.add_get("/api/lineage", _lineage)
    app.router.add_static("/static", STATIC, append_version=False)
    return app


async def _shutdown_pool(app: web.Application) -> None:
    app[POOL].shutdown(wait=False, cancel_futures=True)


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store"
    return response


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except BrokerUnreachable as exc:
        return _json({"error": _one_line(str(exc))}, 503)
    except DoaError as exc:
        return _json({"error": _one_line(str(exc))}, 400)
    except Exception as exc:  # e.g. the broker went away during the read: say so if it did
        gone = await _unreachable(request)
        if gone is not None:
            return _json({"error": _one_line(str(gone))}, 503)
        return _json({"error": _one_line(f"{type(exc).__name__}: {exc}")}, 502)


async def _unreachable(request: web.Request) -> BrokerUnreachable | None:
    """The broker's :class:`BrokerUnreachable` if it is unreachable now, else None."""
    try:
        await asyncio.get_running_loop().run_in_executor(
            request.app[POOL], check_reachable, request.app[BROKER], PROBE_S)
    except BrokerUnreachable as exc:
        return exc
    except Exception:  # an address that is not HOST:PORT: not the broker being gone
        return None
    return None


def _probed(broker: str, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` once ``broker`` answers a TCP connect (else :class:`BrokerUnreachable`)."""
    check_reachable(broker, PROBE_S)
    return fn(*args)


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "error"


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=reads.to_json(data), status=status,
                        content_type="application/json")


async def _blocking(request: web.Request, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, a read of the broker, in a worker thread once the broker answers."""
    return await asyncio.get_running_loop().run_in_executor(
        request.app[POOL], _probed, request.app[BROKER], fn, *args)


def _count(request: web.Request, default: int) -> int:
    text = request.query.get("n", str(default))
    if not text.isdigit():
        raise DoaError(f"query n={text!r}: expected a count of records")
    return min(int(text), reads.MOST)


async def _index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html")


async def _catalog(request: web.Request) -> web.Response:
    catalog, scope = _scoped(request, await request.app[CACHE].get())
    topologies = request.app[TOPOLOGIES]
    graph = layout(catalog, declared_nodes(topologies, catalog))
    return _json({"catalog": catalog, "graph": graph,
                  "event_streams": [s["name"] for s in catalog.get("streams", ())
                                    if reads.event_kind(s)],
                  "topologies": [t.name for t in topologies], "scope": scope})


def _scoped(request: web.Request, catalog: dict[str, Any]
            ) -> tuple[dict[str, Any], dict[str, Any]]:
    """The catalog the page shows: the topologies given to ``doa ui`` only, unless it runs
    with ``--all`` or the page asks ``?all=1``; and what the page says of the others."""
    topologies = request.app[TOPOLOGIES]
    everything = request.app[SHOW_ALL] or request.query.get("all", "") not in ("", "0")
    if not topologies:
        return catalog, {"all": True, "others": []}
    names = [t.name for t in topologies]
    shown, others = scoped(catalog, names, [s for t in topologies for s in _streams_of(t)])
    return (catalog if everything else shown), {"all": everything, "others": others}


def _streams_of(topology: Topology) -> list[str]:
    letters = [topology.dead_letters.name] if topology.dead_letters else []
    return [*topology.streams, *letters]


async def _records(request: web.Request) -> web.Response:
    stream = request.query.get("stream", "")
    if not stream:
        raise DoaError("query stream=: name a stream")
    records = await _blocking(request, reads.tail, request.app[BROKER], stream,
                              _count(request, 20), request.app[TOPOLOGIES])
    return _json({"stream": stream, "records": records})


async def _events(request: web.Request) -> web.Response:
    catalog, _ = _scoped(request, await request.app[CACHE].get())
    found = await _blocking(request, reads.events, request.app[BROKER], catalog,
                            _count(request, 20), request.app[TOPOLOGIES])
    return _json({"events": found})


async def _lineage(request: web.Request) -> web.Response:
    event = _event(request.query.get("event", "").strip())
    catalog = await request.app[CACHE].get()
    streams = [s["name"] for s in catalog.get("streams", ())]
    result = await _blocking(request, reads.lineage, request.app[BROKER], event,
                             request.app[TOPOLOGIES], streams)
    return _json(result)


def _event(text: str) -> str:
    """``text`` if it names a record as :func:`doa.lineage.find.parse_event` takes one; else
    its one-line :class:`DoaError` saying what it takes.

    >>> _event("1198ef9c…")
    '1198ef9c…'
    >>> try:
    ...     _event("zzz")
    ... except DoaError as exc:
    ...     print(str(exc).split(": ", 1)[1])
    give STREAM:PARTITION:OFFSET or a hex event id (32 digits, or its first 8 or more)
    """
    from doa.lineage.find import TAKES, parse_event

    if not text:
        raise DoaError(f"query event=: {TAKES}")
    parse_event(text)
    return text


async def serve(app: web.Application, host: str, port: int,
                ready: Callable[[list[str]], None], stop: asyncio.Event | None = None) -> None:
    """Serve ``app`` on ``host:port`` until ``stop`` is set (or SIGINT/SIGTERM); ``ready``
    gets the bound URLs (port 0 picks a free port). A port in use or a host that is not of
    this machine is a one-line :class:`DoaError` naming the option to change."""
    import signal

    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):  # not the main thread
            loop.add_signal_handler(sig, stop.set)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            raise _bind_error(exc, host, port) from None
        ready([_url(a) for a in runner.addresses])
        await stop.wait()
    finally:
        await runner.cleanup()


def _bind_error(exc: OSError, host: str, port: int) -> DoaError:
    """What to change when ``host:port`` cannot be served on, in one line.

    >>> print(_bind_error(OSError(errno.EADDRINUSE, "in use"), "127.0.0.1", 8765))
    port 8765 on 127.0.0.1 is in use; give another --port
    """
    if isinstance(exc, socket.gaierror):
        return DoaError(f"host {host!r} is unknown ({exc.strerror}); give another --host")
    if exc.errno == errno.EADDRINUSE:
        return DoaError(f"port {port} on {host} is in use; give another --port")
    if exc.errno == errno.EADDRNOTAVAIL:
        return DoaError(f"{host} is not an address of this machine; give another --host")
    if exc.errno == errno.EACCES:
        return DoaError(f"port {port} on {host} needs privileges; give a --port above 1023")
    return DoaError(f"cannot serve on {host}:{port}: {exc.strerror or exc}")


def _url(address: Any) -> str:
    host, port = address[0], address[1]
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"
