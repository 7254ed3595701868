"""walk4 finding 8 without a broker: ``/api/catalog`` of ``doa ui TOPOLOGY`` holds that
topology's nodes and streams only (another user's ``tally`` on the same broker is named in
``scope.others``), all of them with ``?all=1`` or ``make_app(show_all=True)`` (``doa ui
--all``), and the graph has an edge from each node to its topology's dead-letter stream. The
page itself, in a browser: tests/integration/test_walk4_ui.py."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from doa.topology.loader import load_topology
from doa.ui.app import make_app
from doa.ui.graph import layout


def _stream(name: str, *topologies: str) -> dict[str, Any]:
    return {"name": name, "partitions": 1, "records": 0, "rate_per_s": 0.0, "schema": None,
            "topologies": list(topologies), "writers": [], "publishers": [], "readers": []}


def _catalog() -> dict[str, Any]:
    return {"broker": "b:9092", "collected_at": 1, "warnings": [],
            "hidden": ["_doa_schemas", "sensors.flag_spikes.state", "tally.count.state"],
            "streams": [_stream("readings", "sensors"), _stream("alerts", "sensors"),
                        _stream("sensors.dlq", "sensors"), _stream("events", "tally"),
                        _stream("counts", "tally"), _stream("tally.dlq", "tally")],
            "nodes": [{"topology": "sensors", "name": "flag_spikes", "kind": "node",
                       "reads": ["readings"], "writes": ["alerts"], "alive": True,
                       "processes": []},
                      {"topology": "tally", "name": "count", "kind": "node", "reads": ["events"],
                       "writes": ["counts"], "alive": False, "processes": []}],
            "topologies": [{"name": "sensors", "dead_letters": "sensors.dlq",
                            "streams": ["readings", "alerts", "sensors.dlq"],
                            "nodes": ["flag_spikes"]},
                           {"name": "tally", "dead_letters": "tally.dlq",
                            "streams": ["events", "counts", "tally.dlq"], "nodes": ["count"]}]}


def _get(paths: tuple[str, ...], **options: Any) -> list[Any]:
    async def main() -> list[Any]:
        app = make_app("127.0.0.1:1", (load_topology("topologies/sensors.py"),),
                       collect=_catalog, **options)
        async with TestClient(TestServer(app)) as client:
            return [await (await client.get(p)).json() for p in paths]

    return asyncio.run(main())


def _names(data: dict[str, Any]) -> tuple[list[str], list[str], list[str]]:
    return ([s["name"] for s in data["catalog"]["streams"]],
            [n["name"] for n in data["catalog"]["nodes"]],
            sorted(v["id"] for v in data["graph"]["vertices"]))


def test_the_topology_given_is_shown_and_the_others_named() -> None:
    shown, everything = _get(("/api/catalog", "/api/catalog?all=1"))
    assert _names(shown) == (["readings", "alerts", "sensors.dlq"], ["flag_spikes"], [
        "node:sensors.flag_spikes", "stream:alerts", "stream:readings", "stream:sensors.dlq"])
    assert shown["scope"] == {"all": False, "others": ["tally"]}
    assert shown["catalog"]["hidden"] == ["_doa_schemas", "sensors.flag_spikes.state"]
    assert len(_names(everything)[0]) == 6 and _names(everything)[1] == ["flag_spikes", "count"]
    assert everything["scope"] == {"all": True, "others": ["tally"]}


def test_doa_ui_all_shows_every_topology() -> None:
    (data,) = _get(("/api/catalog",), show_all=True)
    assert _names(data)[1] == ["flag_spikes", "count"] and data["scope"]["all"]


def test_each_node_has_an_edge_to_its_dead_letter_stream() -> None:
    edges = {(e["from"], e["to"]): e["dead_letters"] for e in layout(_catalog())["edges"]}
    assert edges[("node:sensors.flag_spikes", "stream:sensors.dlq")] is True
    assert edges[("node:tally.count", "stream:tally.dlq")] is True
    assert edges[("node:sensors.flag_spikes", "stream:alerts")] is False
