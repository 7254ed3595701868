"""The catalog without a broker: descriptions, assembling what a broker said, the renderers."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from html.parser import HTMLParser
from typing import Any

import pytest
from rich.console import Console

from doa.catalog.collect import assemble
from doa.catalog.describe import describe_process, heartbeat, process_key
from doa.catalog.html import columns, graph_edges, page_html
from doa.catalog.publish import announced
from doa.catalog.read import NO_HEADER, BrokerView, _process_record
from doa.catalog.render import renderables
from doa.topology.loader import load_topology

NOW = 1_800_000_000_000


@pytest.fixture(scope="module")
def fraud() -> Any:
    return load_topology("topologies/fraud.py")


def test_description_lists_every_stream_and_node_as_json(fraud: Any) -> None:
    d = describe_process(fraud, ["featurize"], "faust", 2.0, host="h", pid=9, now_ms=NOW)
    assert json.loads(json.dumps(d)) == d  # plain JSON all the way down
    assert [s["name"] for s in d["streams"]] == list(fraud.streams)
    for s in d["streams"]:
        schema = fraud.codec(s["name"]).schema
        assert (s["schema"], s["fingerprint"], s["schema_json"]) == (
            schema.fullname, schema.fingerprint.hex(), schema.json)
        assert s["key"] == fraud.streams[s["name"]].key
    assert [n["name"] for n in d["nodes"]] == list(fraud.nodes)
    scorer = next(n for n in d["nodes"] if n["name"] == "scorer")
    assert scorer["kind"] == "learner" and scorer["model"] == "HoeffdingTreeClassifier"
    assert (d["engine"], d["runs"], d["heartbeat_s"], process_key(d)) == (
        "faust", ["featurize"], 2.0, "fraud/h/9")


def _view(fraud: Any, **overrides: Any) -> BrokerView:
    """What a broker running fraud's featurize (process 1) and scorer + watch_errors (2) says."""
    d1 = describe_process(fraud, ["featurize"], "kafka", 1.0, host="a", pid=1, now_ms=NOW - 60_000)
    d2 = describe_process(fraud, ["scorer", "watch_errors"], "kafka", 1.0, host="b", pid=2,
                          now_ms=NOW - 50_000)
    class Stats:
        records_in, records_out, dead_letters, snapshots = 10, 9, 1, 2

    view = BrokerView("b:9092", NOW, 60.0,
                      partitions={s: 1 for s in fraud.streams} | {"fraud.scorer.state": 1,
                                                                 "_doa_topologies": 2},
                      begin={("transactions", 0): 100}, end={("transactions", 0): 1100},
                      since={("transactions", 0): 500, ("labels", 0): None},
                      writers={"transactions": Counter({"card-feed": 30, NO_HEADER: 2}),
                               "card_features": Counter({"featurize": 40}),
                               "fraud.dlq": Counter({"scorer": 1})},
                      groups={"fraud.featurize": {("transactions", 0): 1000},
                              "fraud.scorer.faust": {("card_features", 0): 5}},
                      descriptions={process_key(d1): d1, process_key(d2): d2},
                      heartbeats={process_key(d1): heartbeat(d1, {"featurize": Stats()},
                                                             now_ms=NOW - 3000),
                                  process_key(d2): heartbeat(d2, now_ms=NOW - 3001)})
    for k, v in overrides.items():
        setattr(view, k, v)
    return view


def test_assemble_counts_writers_readers_and_liveness(fraud: Any) -> None:
    c = assemble(_view(fraud))
    assert [s["name"] for s in c["streams"]] == sorted(fraud.streams)
    assert c["hidden"] == ["_doa_topologies", "fraud.scorer.state"]
    t = next(s for s in c["streams"] if s["name"] == "transactions")
    assert (t["records"], t["last_minute"], t["rate_per_s"]) == (1000, 600, 10.0)
    assert t["publishers"] == [{"name": NO_HEADER, "sampled": 2},
                               {"name": "card-feed", "sampled": 30}]
    assert t["writers"] == [] and t["key"] == "card_id" and t["compacted"] is False
    assert t["readers"] == [{"group": "fraud.featurize", "topology": "fraud",
                             "node": "featurize", "committed": 1000, "lag": 100}]
    f = next(s for s in c["streams"] if s["name"] == "card_features")
    assert f["writers"] == [{"topology": "fraud", "node": "featurize", "alive": True,
                             "sampled": 40}]
    assert [(r["group"], r["node"]) for r in f["readers"]] == [("fraud.scorer.faust", "scorer")]
    dlq = next(s for s in c["streams"] if s["name"] == "fraud.dlq")  # every node may write it
    assert [(w["node"], w["sampled"]) for w in dlq["writers"]] == [
        ("featurize", 0), ("scorer", 1), ("watch_errors", 0)]
    # a 1 s heartbeat 3.000 s ago is alive, 3.001 s ago it is not
    alive = {n["name"]: (n["alive"], [p["status"] for p in n["processes"]]) for n in c["nodes"]}
    assert alive == {"featurize": (True, ["running"]), "scorer": (False, ["silent"]),
                     "watch_errors": (False, ["silent"])}
    featurize = next(n for n in c["nodes"] if n["name"] == "featurize")
    assert featurize["processes"][0]["stats"] == {"records_in": 10, "records_out": 9,
                                                  "dead_letters": 1, "snapshots": 2}
    assert c["topologies"][0]["processes_alive"] == 1


def test_a_stopped_process_is_not_alive_and_says_so(fraud: Any) -> None:
    view = _view(fraud)
    key = "fraud/a/1"
    view.heartbeats[key] = {**view.heartbeats[key], "status": "stopped", "at": NOW}
    c = assemble(view)
    featurize = next(n for n in c["nodes"] if n["name"] == "featurize")
    assert not featurize["alive"] and featurize["processes"][0]["status"] == "stopped"


def test_a_tombstone_forgets_a_process(fraud: Any) -> None:
    view = _view(fraud)
    _process_record(view, b"fraud/a/1", None)
    c = assemble(view)
    assert next(n for n in c["nodes"] if n["name"] == "featurize")["processes"] == []
    _process_record(view, b"fraud/a/1", b"not json")  # ignored, not an error
    assert "fraud/a/1" not in view.descriptions


def test_a_forget_record_forgets_the_processes_it_names_wherever_it_is_read(fraud: Any) -> None:
    view = _view(fraud)
    forgotten = {"type": "forgotten", "topology": "fraud", "at": NOW, "host": "me",
                 "processes": ["fraud/a/1", "fraud/b/2"]}
    _process_record(view, b"fraud", json.dumps(forgotten).encode())
    later = describe_process(fraud, ["featurize"], "kafka", 1.0, host="a", pid=1, now_ms=NOW)
    _process_record(view, b"fraud/a/1", json.dumps(later).encode())  # a late record: forgotten
    c = assemble(view)
    assert (c["topologies"], c["nodes"]) == ([], [])
    assert all(s["writers"] == [] and s["topologies"] == [] for s in c["streams"])
    again = describe_process(fraud, ["scorer"], "kafka", 1.0, host="a", pid=3, now_ms=NOW - 1)
    _process_record(view, b"fraud/a/3", json.dumps(again).encode())  # a new process: counted
    assert [t["name"] for t in assemble(view)["topologies"]] == ["fraud"]


def test_streams_without_descriptions_or_schemas_are_listed(fraud: Any) -> None:
    view = BrokerView("b:9092", NOW, partitions={"raw": 3}, begin={("raw", 1): 5},
                      end={("raw", 0): 4, ("raw", 1): 9, ("raw", 2): 0},
                      configs={"raw": {"cleanup.policy": "compact,delete"}})
    (s,) = assemble(view)["streams"]
    assert (s["records"], s["schema"], s["compacted"], s["writers"], s["readers"]) == (
        8, None, True, [], [])


def test_include_internal_describes_them(fraud: Any) -> None:
    c = assemble(_view(fraud), include_internal=True)
    internal = [s["name"] for s in c["streams"] if s["internal"]]
    assert internal == ["_doa_topologies", "fraud.scorer.state"] and c["hidden"] == []


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.tags: Counter[str] = Counter()
        self.urls: list[str] = []
        self.graph_ids: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        for name, value in attrs:
            if name in ("src", "href") or (value and "url(" in value and "#" not in value):
                self.urls.append(f"{tag} {name}={value}")
            if name == "data-id" and value:
                self.graph_ids.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_html_page_parses_and_holds_every_stream_and_node(fraud: Any) -> None:
    c = assemble(_view(fraud))
    page = page_html(c)
    parser = _Page()
    parser.feed(page)
    parser.close()
    text = "".join(parser.text)
    assert parser.tags["svg"] == 1 and parser.tags["table"] >= 2
    assert parser.urls == []  # nothing to load: no src, no href, no url()
    assert "@import" not in page and "//" not in page.split("<svg")[0].replace("<!--", "")
    for s in fraud.streams:
        assert s in text and f"stream:{s}" in parser.graph_ids
    for n in fraud.nodes:
        assert f"node:fraud.{n}" in parser.graph_ids
    assert "publisher:card-feed" in parser.graph_ids
    data = page.split("<script type=application/json id=catalog>")[1].split("</script>")[0]
    assert json.loads(data.replace("<\\/", "</")) == json.loads(json.dumps(c))


def test_graph_columns_follow_the_flow(fraud: Any) -> None:
    vertices, edges = graph_edges(assemble(_view(fraud)))
    column, _ = columns(vertices, edges)
    for a, b in [("stream:transactions", "node:fraud.featurize"),
                 ("node:fraud.featurize", "stream:card_features"),
                 ("stream:card_features", "node:fraud.scorer")]:
        assert column[a] + 1 == column[b], (a, b)
    assert column["publisher:card-feed"] == 0


def test_terminal_tables_hold_every_stream_and_node(fraud: Any) -> None:
    console = Console(file=io.StringIO(), width=250, record=True, color_system=None)
    for part in renderables(assemble(_view(fraud)), fields=True):
        console.print(part)
    text = console.export_text()
    for name in [*fraud.streams, *fraud.nodes, "card-feed (publisher)",
                 "fraud.featurize (lag 100)", "a:1 kafka running 3 s ago", "spend_zscore"]:
        assert name in text, name


def test_announcing_to_no_broker_warns_once_and_never_fails(
        fraud: Any, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[float] = []
    caplog.set_level(logging.WARNING, logger="doa.catalog.publish")
    with announced(fraud, "127.0.0.1:1", ["featurize"], "kafka",
                   lambda elapsed, stats: seen.append(elapsed)) as tick:
        tick(1.0, {})
    assert seen == [1.0]  # the run's own tick still runs

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]

    deadline = time.monotonic() + 30  # the thread may still be giving up on the broker
    while not warnings() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(warnings()) == 1 and "_doa_topologies" in warnings()[0], warnings()


def test_a_run_that_ended_with_an_error_is_failed_not_stopped(monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    """A walk saw a process that died of an unpicklable state listed as 'stopped', as a clean
    stop is: the announcer keeps the run's error and the catalog shows it."""
    from doa import Topology
    from doa.catalog import publish
    from doa.catalog.collect import processes
    from doa.catalog.describe import describe_process
    from doa.catalog.read import BrokerView

    seen: list[str | None] = []

    class Quiet:
        def __init__(self, *args: object) -> None:
            self.error: str | None = None

        def start(self) -> None:
            pass

        def tick(self, inner: object) -> object:
            return inner

        def stop(self) -> None:
            seen.append(self.error)

    monkeypatch.setattr(publish, "Announcer", Quiet)
    with pytest.raises(RuntimeError), publish.announced(Topology("t"), "b:1", [], "kafka"):
        raise RuntimeError("node 'tally': its state must be picklable")
    assert seen == ["RuntimeError: node 'tally': its state must be picklable"]

    view = BrokerView("b:9092", now_ms=10_000)
    for pid, error in ((1, seen[0]), (2, None)):
        d = {**describe_process(Topology("t"), [], "kafka", 5.0, host="h", pid=pid, now_ms=0),
             "status": "stopped", "stopped_at": 5_000}
        if error:
            d["error"] = error
        view.descriptions[f"t/h/{pid}"] = d
    assert [(p["pid"], p["status"], p["error"]) for p in processes(view)] == [
        (1, "failed", "RuntimeError: node 'tally': its state must be picklable"),
        (2, "stopped", None)]


def test_a_failed_announcement_closes_its_producer_and_the_next_one_connects_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A producer kept after a send failed (the catalog topic gone with a replaced broker)
    asked for that topic's metadata without pause: most of a core on Kafka. It is closed, and
    the next heartbeat makes the topic and a producer anew."""
    from doa.catalog import publish

    class Producer:
        def __init__(self, fails: bool) -> None:
            self.fails, self.closed, self.sent = fails, False, 0

        def send(self, *args: Any, **kwargs: Any) -> Any:
            if self.fails:
                raise TimeoutError("Failed to update metadata after 5.0 secs.")
            self.sent += 1
            return type("Done", (), {"get": lambda self, timeout: None})()

        def close(self, timeout: float) -> None:
            self.closed = True

    made: list[Producer] = []

    def connect(self: publish.Announcer) -> None:
        made.append(Producer(fails=len(made) == 0))
        self._producer = made[-1]

    monkeypatch.setattr(publish.Announcer, "_connect", connect)
    a = publish.Announcer(load_topology("topologies/sensors.py"), "127.0.0.1:9", ["flag_spikes"],
                          "kafka", interval_s=60)
    a._send(0, {"x": 1})
    assert made[0].closed and a._producer is None and a.sent == 0
    a._send(0, {"x": 1})
    assert len(made) == 2 and made[1].sent == 1 and a.sent == 1 and not made[1].closed


def test_each_live_process_shows_the_partitions_its_description_says(fraud: Any) -> None:
    """F5: a description rewritten after a rebalance carries its nodes' assignment; the
    catalog shows it per process while the process is alive, and not once it is silent."""
    view = _view(fraud)
    for key, held in (("fraud/a/1", {"featurize": {"transactions": [0, 2]}}),
                      ("fraud/b/2", {"scorer": {"card_features": [1]}})):
        view.descriptions[key] = {**view.descriptions[key], "assigned": held}
    c = assemble(view)
    shown = {n["name"]: [p["partitions"] for p in n["processes"]] for n in c["nodes"]}
    assert shown == {"featurize": [{"transactions": [0, 2]}], "scorer": [None],  # silent
                     "watch_errors": [None]}  # said nothing of it
    console = Console(file=io.StringIO(), width=250, record=True, color_system=None)
    for part in renderables(c):
        console.print(part)
    assert "a:1 kafka running 3 s ago, partitions of transactions: 0, 2" in console.export_text()


def test_live_processes_of_one_node_with_other_step_code_are_a_warning(fraud: Any) -> None:
    """F7: two live processes of featurize whose descriptions give its step other code."""
    view = _view(fraud)
    d3 = describe_process(fraud, ["featurize"], "kafka", 1.0, host="c", pid=3, now_ms=NOW - 5000)
    d3["nodes"] = [{**n, "code": "0" * 16, "step": "/stale/fraud.py:40"}
                   if n["name"] == "featurize" else n for n in d3["nodes"]]
    view.descriptions["fraud/c/3"] = d3
    view.heartbeats["fraud/c/3"] = heartbeat(d3, now_ms=NOW - 1000)
    c = assemble(view)
    warned = [w for w in c["warnings"] if "different step code" in w]
    assert len(warned) == 1, c["warnings"]
    assert warned[0].startswith("node 'featurize' of topology 'fraud': its live processes run "
                                "different step code (code "), warned[0]
    assert "step /stale/fraud.py:40: c:3" in warned[0] and ": a:1" in warned[0], warned[0]
    codes = [p["code"] for n in c["nodes"] if n["name"] == "featurize" for p in n["processes"]]
    assert len(set(codes)) == 2
    # not once the other one is no longer alive
    view.heartbeats["fraud/c/3"] = heartbeat(d3, now_ms=NOW - 10_000)
    assert not [w for w in assemble(view)["warnings"] if "step code" in w]
