"""``doa ui`` when its broker goes away and comes back: every JSON endpoint answers in seconds
with the CLI's one line (:class:`doa.cluster.reach.BrokerUnreachable`) and status 503, the
page shows that line, and the endpoints read the broker again once it is back on its port.
The behaviour under test is the UI's, not the broker's: the embedded broker only."""

from __future__ import annotations

import asyncio
import json
import os
import select
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from doa.local.embedded import EmbeddedBroker
from doa.ui.app import MAX_AGE_S
from tests.browser import Browser, chromium_path
from tests.integration.conftest import doa_process, kill9
from tests.integration.helpers import wait_until

pytestmark = pytest.mark.broker

ENDPOINTS = ("/api/catalog", "/api/records?stream=transactions&n=5", "/api/events?n=5",
             "/api/lineage?event=transactions:0:0")


def _url_of(proc: Any, timeout: float) -> str:
    """The URL ``doa ui`` prints once it listens."""
    deadline, seen = time.monotonic() + timeout, b""
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.2)[0]:
            seen += os.read(proc.stdout.fileno(), 4096)
            for line in seen.decode(errors="replace").splitlines():
                if "serving http" in line:
                    return line.split("serving ", 1)[1].split()[0]
    raise AssertionError(f"doa ui printed no URL in {timeout:g} s: {seen!r}")


def _get(url: str) -> tuple[int, dict[str, Any], float]:
    """Status, JSON body and seconds taken of a GET of ``url``."""
    start = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    return status, json.loads(body), time.monotonic() - start


def _page_status(url: str) -> str:
    """The page's status line once it shows an error."""
    async def scenario() -> str:
        async with Browser() as browser:
            page = await browser.new_page()
            await page.goto(url)
            text = await page.wait_for(
                "(() => { const s = document.getElementById('status');"
                " return s.className.includes('error') && s.textContent; })()", 20)
            return str(text)

    return asyncio.run(scenario())


def test_endpoints_say_the_broker_is_unreachable_in_seconds_then_recover() -> None:
    broker = EmbeddedBroker().start()
    address, port = broker.address, broker.port
    ui = doa_process("ui", "--broker", address, "--port", "0")
    try:
        url = _url_of(ui, 60).rstrip("/")
        assert _get(url + "/api/catalog")[0] == 200
        broker.stop()
        time.sleep(MAX_AGE_S + 0.1)  # the catalog collected just now is served that long
        expected = (f"broker {address} unreachable (connection refused); check that it is "
                    "running and that --broker or DOA_BROKER names its HOST:PORT")
        for path in ENDPOINTS:
            status, body, seconds = _get(url + path)
            assert (status, body) == (503, {"error": expected}), path
            assert seconds < 5, f"{path} took {seconds:.1f} s"
        if chromium_path() is not None:
            assert _page_status(url + "/") == "catalog: " + expected
        broker = EmbeddedBroker(port=port).start()  # back on the same port
        assert wait_until(lambda: _get(url + "/api/catalog")[0] == 200, 30, 0.5)
        status, body, _ = _get(url + "/api/records?stream=nosuch&n=5")
        assert status == 400 and "no such stream" in body["error"]
    finally:
        if ui.poll() is None:
            kill9(ui)
        broker.stop()
