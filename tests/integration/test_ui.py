"""``doa ui`` and ``doa catalog --html`` in a real headless browser, on a running fraud demo.

One ``doa run topologies/fraud.py`` on the embedded broker, the demo's transactions and labels
published (enough labels for the scorer's first model version), then ``doa ui`` as its own
process. Chromium (tests/browser.py, over CDP) loads the pages; the checks read the DOM after
the page's scripts ran, and every request the page made (``Network.requestWillBeSent``) must
stay on this machine. Records and lineage shown are compared with what doa's own readers
(:class:`doa.lineage.log.Log`, ``doa lineage``) return for the same record.

``DOA_UPDATE_DOCS=1`` also writes the screenshot of the lineage test to ``docs/ui.png``.
The behaviour under test is the page's, not the broker's: tansu only.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from doa.catalog import collect
from doa.client import Publisher
from doa.lineage.log import Log
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.browser import Browser, local, need_chromium
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import doa_command, wait_until

pytestmark = pytest.mark.broker

FRAUD = "topologies/fraud.py"
ENV = {"DOA_HEARTBEAT_S": "1", "DOA_SNAPSHOT_EVERY_MS": "500", "DOA_SHUTDOWN_GRACE_S": "5"}
TRANSACTIONS = 2100  # labels come 1000 transactions later: 1100 labels, one model version
NODES = ("featurize", "scorer", "watch_errors")


@dataclass
class System:
    address: str
    url: str


def _publish(address: str) -> None:
    from topologies.fraud import T0, demo_source

    shift = int(time.time() * 1000) - T0 - 5000
    pubs: dict[str, Publisher] = {}
    sent = 0
    try:
        for stream, record, ts in demo_source(20_000):
            if stream == "transactions":
                if sent == TRANSACTIONS:
                    break
                sent += 1
            if stream not in pubs:
                pubs[stream] = Publisher(stream, broker=address, name="card-feed")
            pubs[stream].send(record, timestamp_ms=ts + shift)
    finally:
        for p in pubs.values():
            p.close()


def _records(catalog: dict[str, Any], stream: str) -> int:
    return int(next(s["records"] for s in catalog["streams"] if s["name"] == stream))


def _url_of(proc: Any, timeout: float) -> str:
    """The URL ``doa ui`` prints once it listens."""
    deadline = time.monotonic() + timeout
    seen = b""
    while time.monotonic() < deadline and proc.poll() is None:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            seen += os.read(proc.stdout.fileno(), 4096)
            for line in seen.decode(errors="replace").splitlines():
                if "serving http" in line:
                    return line.split("serving ", 1)[1].split()[0]
    raise AssertionError(f"doa ui printed no URL in {timeout:g} s: {seen!r} "
                         f"{proc.stderr.read() if proc.poll() is not None else b''!r}")


@pytest.fixture(scope="module")
def system() -> Iterator[System]:
    need_chromium()
    with EmbeddedBroker() as broker:
        address = broker.address
        run = doa_process("run", FRAUD, "-q", env={"DOA_BROKER": address, **ENV})
        ui = None
        try:
            assert wait_until(lambda: set(NODES) <= {
                n["name"] for n in collect(address)["nodes"] if n["alive"]}, 120, 0.5), \
                "the fraud nodes never showed as alive"
            _publish(address)
            assert wait_until(lambda: (lambda c: _records(c, "models") >= 1
                                       and _records(c, "predictions") >= TRANSACTIONS)(
                collect(address)), 120, 0.5), "no model version or predictions in 120 s"
            ui = doa_process("ui", "--broker", address, "--port", "0", FRAUD)
            yield System(address, _url_of(ui, 60))
        finally:
            for p in (ui, run):
                if p is not None and p.poll() is None:
                    kill9(p)


def _assert_local(requests: list[str], base: str) -> None:
    assert requests, "the page made no request at all"
    outside = [u for u in requests if not local(u)]
    assert not outside, f"requests leaving the machine: {outside}"
    assert all(u.startswith(base) or u.startswith("data:") for u in requests), requests


async def _open(browser: Browser, url: str) -> Any:
    page = await browser.new_page()
    await page.goto(url)
    return page


def test_ui_shows_streams_graph_records_and_events(system: System) -> None:
    topology = load_topology(FRAUD)
    rows = ("(() => { const n = [...document.querySelectorAll('#streams tr.stream-row')]"
            f".map(r => r.dataset.name); return n.length >= {len(topology.streams)} && n; }})()")

    async def scenario() -> dict[str, Any]:
        async with Browser() as browser:
            page = await _open(browser, system.url)
            seen: dict[str, Any] = {"names": await page.wait_for(rows)}
            seen["ids"] = await page.wait_for(
                "(() => { const g = [...document.querySelectorAll('#graph g.node')];"
                " return g.length && g.every(x => x.querySelector('rect'))"
                " && g.map(x => x.dataset.id); })()")
            await page.evaluate("document.querySelector("
                                "'#streams tr[data-name=\"predictions\"] a').click()")
            seen["shown"] = await page.wait_for(
                "(() => { const r = document.querySelector('#records .record');"
                " return r && r.dataset.where.startsWith('predictions:') &&"
                " {where: r.dataset.where, text: r.querySelector('pre').textContent}; })()")
            seen["events"] = await page.wait_for(
                "(() => { const e = [...document.querySelectorAll('#events li')]"
                ".map(li => li.textContent); return e.length && e; })()")
            await page.wait_for("document.getElementById('status').className.includes('ok')")
            seen["requests"] = list(page.requests)
            return seen

    seen = asyncio.run(scenario())
    assert set(topology.streams) <= set(seen["names"])
    assert not any(n.startswith("_") for n in seen["names"])
    assert sorted(seen["ids"]) == sorted(f"node:fraud.{n}" for n in topology.nodes)
    # the newest prediction shown is the record doa's own log reader decodes there
    stream, partition, offset = seen["shown"]["where"].rsplit(":", 2)
    with Log(system.address, topology) as log:
        expected = log.get(stream, int(partition), int(offset))
        end = log.end(stream, int(partition))
    assert expected is not None and int(offset) == end - 1
    page_value = json.loads(seen["shown"]["text"])
    assert page_value == json.loads(json.dumps(dict(expected.event), default=str))
    assert any(e.startswith("model scorer: created version") for e in seen["events"])
    _assert_local(seen["requests"], system.url)
    assert any("/api/records?stream=predictions" in u for u in seen["requests"])


def test_lineage_box_traces_a_real_event_id(system: System, tmp_path: Path) -> None:
    async def scenario() -> dict[str, Any]:
        async with Browser() as browser:
            page = await _open(browser, system.url + "#stream=predictions")
            event_id = await page.wait_for(
                "(() => { const c = document.querySelector('#records .record code');"
                " return c && c.textContent; })()")
            await page.evaluate(
                f"document.getElementById('lineage-input').value = {json.dumps(event_id)};"
                " document.querySelector('#lineage-form button').click()")
            tree = await page.wait_for(
                "(() => { const o = document.getElementById('lineage-out');"
                " return o.textContent.includes('ancestry') && o.textContent; })()", 25)
            await page.wait_for("document.querySelectorAll('#events li').length > 0")
            shot = await page.screenshot(tmp_path / "ui.png")
            return {"id": event_id, "tree": tree, "shot": shot, "requests": list(page.requests)}

    seen = asyncio.run(scenario())
    event_id, tree, shot, requests = seen["id"], seen["tree"], seen["shot"], seen["requests"]
    assert len(event_id) == 32
    lines = tree.splitlines()
    assert lines[0].startswith("predictions:0:") and f"id={event_id[:8]}" in lines[0]
    assert any("parent: card_features:0:" in line for line in lines)
    assert any("parent: transactions:0:" in line for line in lines)
    # the same trace as `doa lineage` prints for that id
    cli = doa_command("lineage", event_id, FRAUD, "--broker", system.address)
    assert cli.returncode == 0, cli.stderr.decode()
    assert cli.stdout.decode().splitlines()[:-1] == lines
    _assert_local(requests, system.url)
    assert any("/api/lineage?event=" + event_id in u for u in requests)
    png = Path(shot).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    if os.environ.get("DOA_UPDATE_DOCS") == "1":
        shutil.copyfile(shot, ROOT / "docs" / "ui.png")


def test_static_catalog_page_makes_no_request(system: System, tmp_path: Path) -> None:
    page_file = tmp_path / "catalog.html"
    result = doa_command("catalog", "--broker", system.address, "--html", str(page_file))
    assert result.returncode == 0, result.stderr.decode()
    topology = load_topology(FRAUD)

    async def scenario() -> dict[str, Any]:
        async with Browser() as browser:
            page = await _open(browser, page_file.as_uri())
            seen: dict[str, Any] = {"names": await page.evaluate(
                "[...document.querySelectorAll('tr.stream-row')].map(r => r.dataset.name)")}
            seen["ids"] = await page.evaluate(
                "[...document.querySelectorAll('#graph g.node')]"
                ".filter(g => g.querySelector('rect')).map(g => g.dataset.id)")
            await page.evaluate("const f = document.getElementById('filter');"
                                " f.value = 'pred'; f.dispatchEvent(new Event('input'))")
            seen["visible"] = await page.evaluate(
                "[...document.querySelectorAll('tr.stream-row')]"
                ".filter(r => r.style.display !== 'none').map(r => r.dataset.name)")
            seen["requests"] = list(page.requests)
            return seen

    seen = asyncio.run(scenario())
    assert set(topology.streams) <= set(seen["names"])
    assert sorted(seen["ids"]) == sorted(f"node:fraud.{n}" for n in topology.nodes)
    assert seen["visible"] == ["predictions"]  # its script ran
    assert seen["requests"] == [page_file.as_uri()]
