"""``doa ui`` without a broker: the app's endpoints (a stand-in catalog), its cache, its
errors, the page's assets, the graph layout and the CLI's missing-extra message. The page in
a real browser on a running system is tests/integration/test_ui.py."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from doa.errors import DoaError
from doa.events import Event
from doa.lineage.log import Record
from doa.topology.loader import load_topology
from doa.ui import reads
from doa.ui.app import STATIC, CatalogCache, make_app
from doa.ui.graph import declared_nodes, layout

SVG_NAMESPACE = "http://www.w3.org/2000/svg"


def _catalog(n: int = 1) -> dict[str, Any]:
    def stream(name: str, schema: str | None) -> dict[str, Any]:
        return {"name": name, "partitions": 1, "records": 5, "rate_per_s": 0.5,
                "schema": {"name": schema, "fields": []} if schema else None,
                "writers": [], "publishers": [], "readers": []}

    return {"broker": "b:9092", "collected_at": n, "hidden": [], "warnings": [],
            "streams": [stream("readings", "sensors.Reading"), stream("alerts", None),
                        stream("drift", "doa.DriftEvent"), stream("models", "doa.ModelEvent")],
            "nodes": []}


def _run(app_collect: Callable[[], dict[str, Any]],
         scenario: Callable[[TestClient[Any, Any]], Awaitable[Any]], **options: Any) -> Any:
    async def main() -> Any:
        app = make_app(options.pop("broker", "127.0.0.1:1"), options.pop("topologies", ()),
                       collect=app_collect, **options)
        async with TestClient(TestServer(app)) as client:
            return await scenario(client)

    return asyncio.run(main())


def test_page_and_assets_are_served_under_a_strict_content_security_policy() -> None:
    async def scenario(client: TestClient[Any, Any]) -> list[tuple[int, str, str, str]]:
        out = []
        for path in ("/", "/static/app.js", "/static/style.css"):
            r = await client.get(path)
            out.append((r.status, r.content_type, r.headers["Content-Security-Policy"],
                        await r.text()))
        return out

    (s1, t1, csp, html), (s2, t2, _, js), (s3, t3, _, css) = _run(_catalog, scenario)
    assert (s1, s2, s3) == (200, 200, 200)
    assert (t1, t3) == ("text/html", "text/css") and t2.endswith("/javascript")
    assert "default-src 'self'" in csp and "connect-src 'self'" in csp
    assert 'src="/static/app.js"' in html and 'href="/static/style.css"' in html
    assert "refreshCatalog" in js and "#graph" in css


def test_static_files_point_nowhere_else() -> None:
    files = sorted(STATIC.iterdir())
    assert {f.name for f in files} == {"index.html", "app.js", "style.css"}
    for f in files:
        text = f.read_text()
        urls = set(re.findall(r"[a-z][a-z0-9+.-]*://[^\s'\"`)]+", text))
        assert urls <= {SVG_NAMESPACE}, f"{f.name} names {urls - {SVG_NAMESPACE}}"
        refs = re.findall(r"""(?:src|href)=["']([^"']*)["']""", text)
        assert all(r.startswith(("/static/", "#", "data:")) for r in refs), (f.name, refs)
        assert "@import" not in text and "url(http" not in text


def test_the_catalog_is_collected_once_for_concurrent_callers_then_again_when_old() -> None:
    calls: list[int] = []
    started, release = threading.Event(), threading.Event()
    now = [100.0]

    def collect() -> dict[str, Any]:
        started.set()
        release.wait(30)
        calls.append(1)
        return _catalog(len(calls))

    cache = CatalogCache(collect, max_age_s=2.0, clock=lambda: now[0])

    async def scenario() -> list[int]:
        tasks = [asyncio.ensure_future(cache.get()) for _ in range(5)]
        while not started.is_set():  # the first caller is collecting; the others, scheduled
            await asyncio.sleep(0.01)  # in the same loop turn, wait on the cache's lock
        release.set()
        seen = [(await t)["collected_at"] for t in tasks]
        now[0] += 1.9
        seen.append((await cache.get())["collected_at"])  # still fresh
        now[0] += 0.2
        seen.append((await cache.get())["collected_at"])  # 2.1 s old: collected again
        return seen

    assert asyncio.run(scenario()) == [1, 1, 1, 1, 1, 1, 2]
    assert len(calls) == 2


def test_catalog_endpoint_adds_the_graph_and_the_event_streams() -> None:
    sensors = load_topology("topologies/sensors.py")

    async def scenario(client: TestClient[Any, Any]) -> Any:
        return [await (await client.get(path)).json()
                for path in ("/api/catalog?all=1", "/api/catalog")]

    data, scoped = _run(_catalog, scenario, topologies=(sensors,))
    assert data["event_streams"] == ["drift", "models"]
    # without ?all=1, the topology's streams only (drift and models are none of sensors')
    assert [s["name"] for s in scoped["catalog"]["streams"]] == ["readings", "alerts"]
    assert scoped["event_streams"] == [] and scoped["scope"] == {"all": False, "others": []}
    assert data["topologies"] == ["sensors"]
    nodes = [v for v in data["graph"]["vertices"] if v["kind"] == "node"]
    assert [(v["id"], v["alive"], v["declared_only"]) for v in nodes] == [
        ("node:sensors.flag_spikes", False, True)]


def test_errors_are_one_line_of_json(monkeypatch: pytest.MonkeyPatch) -> None:
    # the stand-in broker below takes connections but speaks no Kafka: let the probe pass
    monkeypatch.setattr("doa.cluster.reach._kafka_answers", lambda sock, wait_s: None)

    def broken() -> dict[str, Any]:
        raise RuntimeError("broker\n  gone")

    async def ask(client: TestClient[Any, Any], path: str) -> tuple[int, Any]:
        r = await client.get(path)
        return r.status, await r.json()

    async def scenario(client: TestClient[Any, Any]) -> list[tuple[int, Any]]:
        return [await ask(client, p) for p in (
            "/api/records", "/api/records?stream=x&n=ab", "/api/lineage?event=nonsense",
            "/api/lineage")]

    assert _run(_catalog, scenario) == [
        (400, {"error": "query stream=: name a stream"}),
        (400, {"error": "query n='ab': expected a count of records"}),
        (400, {"error": "event 'nonsense': give STREAM:PARTITION:OFFSET or a hex event id "
                        "(32 digits, or its first 8 or more)"}),
        (400, {"error": "query event=: give STREAM:PARTITION:OFFSET or a hex event id "
                        "(32 digits, or its first 8 or more)"})]

    async def catalog(client: TestClient[Any, Any]) -> tuple[int, Any]:
        return await ask(client, "/api/catalog")

    with socket.socket() as up:  # a broker that answers (the probe only connects): 502
        up.bind(("127.0.0.1", 0))
        up.listen()
        broker = f"127.0.0.1:{up.getsockname()[1]}"
        assert _run(broken, catalog, broker=broker) == (
            502, {"error": "RuntimeError: broker gone"})
    assert _run(broken, catalog)[0] == 503  # nothing at 127.0.0.1:1: the broker is gone


def test_layout_of_the_fraud_topology_puts_every_edge_left_to_right_but_the_cycle() -> None:
    fraud = load_topology("topologies/fraud.py")
    g = layout({"streams": [], "nodes": []}, declared_nodes([fraud], {"nodes": []}))
    place = {v["id"]: v for v in g["vertices"]}
    assert {v for v in place if v.startswith("node:")} == {
        f"node:fraud.{n}" for n in fraud.nodes}
    assert len({(v["x"], v["y"]) for v in place.values()}) == len(place)  # no overlap
    back = [(e["from"], e["to"]) for e in g["edges"] if e["back"]]
    forward = [(e["from"], e["to"]) for e in g["edges"] if not e["back"]]
    cycle = {"node:fraud.scorer", "stream:outcomes", "node:fraud.watch_errors", "stream:drift"}
    assert len(back) == 1 and set(back[0]) <= cycle
    assert all(place[a]["column"] < place[b]["column"] for a, b in forward)
    for v in place.values():  # longest path: a vertex sits just right of a predecessor
        preds = [place[a]["column"] for a, b in forward if b == v["id"]]
        assert v["column"] == (max(preds) + 1 if preds else 0)
    # the scorer sits right of the features it reads, not next to its control stream
    assert place["node:fraud.scorer"]["column"] > place["stream:card_features"]["column"]
    assert g["width"] >= max(v["x"] for v in place.values()) + g["box"][0]
    assert g["height"] >= max(v["y"] for v in place.values()) + g["box"][1]


def test_records_as_json() -> None:
    e = Event({"blob": b"\x00" * 40, "gap": float("nan"), "n": 1}, stream="s", partition=0,
              offset=7, timestamp=9, key=b"card-1")
    d = reads.record_dict(Record(e, None))
    assert (d["where"], d["key"], d["node"], d["id"]) == ("s:0:7", "card-1", None, e.id.hex())
    assert reads.to_json(d["value"]) == b'{"blob":"<40 bytes>","gap":"NaN","n":1}'
    assert reads.record_dict(Record(Event({}, stream="s", partition=0, offset=0, timestamp=0,
                                        key=b"\xff"), None))["key"] == "ff"


def test_cli_names_the_extra_when_aiohttp_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from doa.cli.app import cli

    monkeypatch.delitem(sys.modules, "doa.ui.app", raising=False)
    monkeypatch.setitem(sys.modules, "aiohttp", None)
    result = CliRunner().invoke(cli, ["ui", "--broker", "127.0.0.1:1"])
    assert isinstance(result.exception, DoaError)
    assert str(result.exception) == "doa ui needs aiohttp: pip install 'doa[ui]'"
