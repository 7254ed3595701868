"""A headless Chromium driven over the Chrome DevTools Protocol (CDP), for the browser tests.

:class:`Browser` starts ``chromium --headless=new --remote-debugging-port=0`` with a fresh
profile, reads the port it chose from ``DevToolsActivePort`` in the profile, and opens pages;
a :class:`Page` talks CDP over one websocket (aiohttp's client): it records every network
request the page makes (``Network.requestWillBeSent``), evaluates JavaScript, polls for DOM
conditions (never a fixed sleep: only timeouts that bound a failure) and takes screenshots.

Chromium is Debian's (``/usr/bin/chromium``; ``$DOA_CHROMIUM`` overrides); ``.ci/run``
installs it when missing. Background services that could reach the network are switched off
by flags, but the tests check the page's own requests, whatever the flags.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

FLAGS = ("--headless=new", "--remote-debugging-port=0", "--no-sandbox", "--disable-gpu",
         "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions",
         "--disable-default-apps", "--disable-domain-reliability", "--mute-audio",
         "--hide-scrollbars", "--metrics-recording-only", "--window-size=1440,1000")


def chromium_path() -> str | None:
    """The Chromium to use, or None if there is none."""
    configured = os.environ.get("DOA_CHROMIUM")
    if configured:
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def need_chromium() -> str:
    """Chromium's path; a skip naming the reason when it is missing, a failure when
    ``DOA_REQUIRE_BROWSER=1`` (``.ci/run`` sets it after installing Chromium)."""
    path = chromium_path()
    if path is None:
        message = "no chromium on PATH (.ci/run installs Debian's chromium)"
        if os.environ.get("DOA_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return path


class CDPError(RuntimeError):
    """A CDP command failed, or a page script threw."""


class Page:
    """One page target: send commands, keep events, record requests."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.requests: list[str] = []  # every URL the page asked for, in order
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            else:
                self.events.append(data)
                if data.get("method") == "Network.requestWillBeSent":
                    self.requests.append(data["params"]["request"]["url"])
        for future in self._pending.values():
            if not future.done():
                future.set_exception(CDPError("the DevTools connection closed"))

    async def send(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        """Run one CDP command; its result."""
        n = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[n] = future
        await self._ws.send_str(json.dumps({"id": n, "method": method, "params": params}))
        answer = await asyncio.wait_for(future, timeout)
        if "error" in answer:
            raise CDPError(f"{method}: {answer['error'].get('message')}")
        return dict(answer.get("result", {}))

    async def goto(self, url: str, timeout: float = 30.0) -> None:
        """Navigate and wait for the load event."""
        loads = sum(1 for e in self.events if e.get("method") == "Page.loadEventFired")
        await self.send("Page.navigate", url=url)
        await self.wait(lambda: sum(1 for e in self.events
                                    if e.get("method") == "Page.loadEventFired") > loads,
                        timeout, f"the load event of {url}")

    async def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = await self.send("Runtime.evaluate", expression=expression,
                                 returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"script {expression[:60]!r}: {text}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        """Poll a JavaScript expression until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        value: Any = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"after {timeout:g} s still falsy ({value!r}): {expression}")

    async def wait(self, condition: Any, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"no {what} within {timeout:g} s")
            await asyncio.sleep(0.05)

    async def screenshot(self, path: Path, full_page: bool = True) -> Path:
        """A PNG of the page (its whole height with ``full_page``)."""
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            metrics = await self.send("Page.getLayoutMetrics")
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"],
                              "height": min(size["height"], 4000), "scale": 1}
            params["captureBeyondViewport"] = True
        shot = await self.send("Page.captureScreenshot", **params)
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    async def close(self) -> None:
        await self._ws.close()
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader


class Browser:
    """A headless Chromium of its own profile (an async context manager)."""

    def __init__(self, timeout: float = 30.0) -> None:
        self.timeout = timeout
        self.port = 0
        self._dir = Path(tempfile.mkdtemp(prefix="doa-chromium-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._pages: list[Page] = []

    async def __aenter__(self) -> Browser:
        binary = need_chromium()
        profile = self._dir / "profile"
        log = open(self._dir / "chromium.log", "wb")  # noqa: SIM115 (closed by the child's exit)
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        log.close()
        active = profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (active.exists() and active.read_text().count("\n") >= 1):
            if self._proc.poll() is not None or time.monotonic() > deadline:
                tail = (self._dir / "chromium.log").read_text(errors="replace")[-800:]
                await self.__aexit__()
                raise RuntimeError(f"chromium did not start its DevTools server: {tail}")
            await asyncio.sleep(0.05)
        self.port = int(active.read_text().split()[0])
        self._session = aiohttp.ClientSession()
        return self

    async def new_page(self) -> Page:
        """A fresh tab with the Page, Network and Runtime domains enabled."""
        assert self._session is not None
        async with self._session.put(
                f"http://127.0.0.1:{self.port}/json/new?about:blank") as response:
            target = await response.json()
        ws = await self._session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        self._pages.append(page)
        for domain in ("Page", "Network", "Runtime"):
            await page.send(f"{domain}.enable")
        await page.send("Emulation.setDeviceMetricsOverride", width=1440, height=1000,
                        deviceScaleFactor=1, mobile=False)
        return page

    async def __aexit__(self, *exc: object) -> None:
        for page in self._pages:
            with contextlib.suppress(Exception):
                await page.close()
        if self._session is not None:
            await self._session.close()
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self._proc.pid, signal.SIGKILL)
                self._proc.wait()
        shutil.rmtree(self._dir, ignore_errors=True)


def local(url: str) -> bool:
    """Whether a request stays on this machine: 127.0.0.1, localhost, ::1, or data:/file:.

    >>> [local(u) for u in ("http://127.0.0.1:80/x", "http://localhost/", "file:///a.html",
    ...                     "https://fonts.googleapis.com/css", "http://[::1]:8/")]
    [True, True, True, False, True]
    """
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme in ("data", "file", "about", "blob"):
        return True
    return parts.hostname in ("127.0.0.1", "localhost", "::1")
