"""walk4 finding 8: ``doa ui TOPOLOGY`` drew every topology on the broker (another user's
nodes and streams on a shared embedded broker) though its header named the topology, and the
dead-letter stream was drawn with no edge from the nodes that write to it.

Two topologies run on one embedded broker (``counting`` and a ``tally`` of another user); the
page of ``doa ui COUNTING`` in headless Chromium shows counting's nodes and streams only, says
in one line that the broker holds one other topology (tally) with a link to show all, draws an
edge from ``count`` to ``counting.dlq``, and with ``?all=1`` shows tally too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doa.catalog import collect
from doa.local.embedded import EmbeddedBroker
from tests.browser import Browser, need_chromium
from tests.integration.conftest import COUNTING, ROOT, doa_process, kill9
from tests.integration.helpers import wait_until
from tests.integration.test_ui import _url_of

pytestmark = pytest.mark.broker

ENV = {"DOA_HEARTBEAT_S": "1", "DOA_SHUTDOWN_GRACE_S": "5"}
TALLY = f'''
from doa import Topology

topology = Topology("tally", schemas={str(ROOT / "tests" / "schemas")!r})
clicks = topology.stream("clicks", schema="testing.Event", key="key")
totals = topology.stream("totals", schema="testing.Count", key="key")


@topology.node(reads=clicks, writes=totals, state=dict)
def tally(state, batch):
    return state, []
'''

GRAPH = ("(() => { const v = [...document.querySelectorAll('#graph g')].map(g => g.dataset.id);"
         " return v.length && v; })()")
STREAMS = "[...document.querySelectorAll('#streams tr.stream-row')].map(r => r.dataset.name)"
NODES = "[...document.querySelectorAll('#nodes tr.node-row')].map(r => r.dataset.name)"
LETTERS = ("[...document.querySelectorAll('#graph path.edge')].filter(p => p.dataset.to =="
           " 'stream:counting.dlq').map(p => [p.dataset.from, p.getAttribute('class')])")


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    need_chromium()
    tally = tmp_path_factory.mktemp("tally") / "tally.py"
    tally.write_text(TALLY)
    with EmbeddedBroker() as broker:
        env = {"DOA_BROKER": broker.address, **ENV}
        procs = [doa_process("run", COUNTING, "-q", env=env),
                 doa_process("run", str(tally), "-q", env=env)]
        try:
            assert wait_until(lambda: {"count", "tally"} <= {
                n["name"] for n in collect(broker.address)["nodes"] if n["alive"]}, 120, 0.5), \
                "the two topologies' nodes never showed as alive"
            ui = doa_process("ui", "--broker", broker.address, "--port", "0", COUNTING)
            procs.append(ui)
            yield _url_of(ui, 60)
        finally:
            for p in procs:
                if p.poll() is None:
                    kill9(p)


def _page(url: str, shot: Path | None = None) -> dict[str, Any]:
    async def scenario() -> dict[str, Any]:
        async with Browser() as browser:
            page = await browser.new_page()
            await page.goto(url)
            await page.wait_for("document.getElementById('status').className.includes('ok')", 30)
            seen = {"graph": await page.wait_for(GRAPH), "streams": await page.evaluate(STREAMS),
                    "nodes": await page.evaluate(NODES), "letters": await page.evaluate(LETTERS),
                    "scope": await page.evaluate(
                        "(document.getElementById('scope') || {}).textContent || ''"),
                    "link": await page.evaluate(
                        "(document.getElementById('scope-link') || {}).href || null")}
            if shot is not None:
                await page.screenshot(shot)
            return seen

    return asyncio.run(scenario())


def test_the_page_of_a_topology_shows_it_only_and_says_the_others(url: str,
                                                                   tmp_path: Path) -> None:
    seen = _page(url, tmp_path / "ui.png")
    nodes = sorted(v for v in seen["graph"] if v.startswith("node:"))
    streams = sorted(v for v in seen["graph"] if v.startswith("stream:"))
    assert nodes == ["node:counting.count"], seen
    assert streams == ["stream:counting.dlq", "stream:counts", "stream:events"], seen
    assert sorted(seen["streams"]) == ["counting.dlq", "counts", "events"], seen
    assert seen["nodes"] == ["count"], seen
    assert seen["scope"].startswith("this broker also holds 1 other topology (tally), not shown")
    assert seen["link"] == url + "?all=1", seen
    assert seen["letters"] == [["node:counting.count", "edge letters"]], seen


def test_show_all_draws_every_topology_on_the_broker(url: str) -> None:
    seen = _page(url + "?all=1")
    nodes = sorted(v for v in seen["graph"] if v.startswith("node:"))
    assert nodes == ["node:counting.count", "node:tally.tally"], seen
    assert {"clicks", "totals", "tally.dlq", "events"} <= set(seen["streams"]), seen
    assert seen["scope"].startswith("showing every topology on this broker, with 1 other "
                                    "topology (tally)"), seen
    assert seen["link"] == url, seen
    assert ["node:counting.count", "edge letters"] in seen["letters"], seen
