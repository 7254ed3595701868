"""OpenLineage run events of real runs, captured with the client's own file transport
(configured the way a user would: ``OPENLINEAGE__TRANSPORT__*``), validated against the
OpenLineage spec (tests/data/openlineage), with each node's inputs and outputs, and START,
RUNNING ..., then COMPLETE, or FAIL when the run fails."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare, run_nodes
from doa.errors import StepError
from doa.topology.topology import Topology
from tests.test_observe_lineage import validate_event

pytestmark = pytest.mark.broker

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
N = 20


def chain() -> Topology:
    """events -> count -> counts -> tally -> tallies."""
    t = Topology("lineage", schemas=SCHEMAS)
    events = t.stream("events", schema="testing.Event", key="key", partitions=2)
    counts = t.stream("counts", schema="testing.Count", key="key", partitions=2)
    tallies = t.stream("tallies", schema="testing.Count", key="key", partitions=2)

    @t.node(reads=events, writes=counts, state=dict)
    def count(state: dict[str, int], batch: list[Any]) -> tuple[Any, list[Any]]:
        out = []
        for e in batch:
            state[e["key"]] = state.get(e["key"], 0) + 1
            out.append((e, {"key": e["key"], "n": e["n"], "count": state[e["key"]],
                            "total": 0}))
        return state, out

    @t.node(reads=counts, writes=tallies, state=lambda: 0)
    def tally(state: int, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state + len(batch), [(e, dict(e)) for e in batch]

    return t


def file_transport(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__TYPE", "file")
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__LOG_FILE_PATH", str(path))
    monkeypatch.setenv("OPENLINEAGE__TRANSPORT__APPEND", "true")
    monkeypatch.setenv("DOA_OPENLINEAGE_INTERVAL_S", "0.3")
    monkeypatch.delenv("OPENLINEAGE_URL", raising=False)


def events_in(path: Path) -> list[dict[str, Any]]:
    """The events written whole so far: the transport appends each event's line while a test's
    ``until`` may be reading, so a last line without its newline is one still being written."""
    if not path.exists():
        return []
    whole = path.read_text().split("\n")[:-1]
    return [json.loads(line) for line in whole if line.strip()]


def by_job(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    jobs: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        jobs.setdefault(e["job"]["name"], []).append(e)
    return jobs


@pytest.mark.brokers("tansu", reason="the events describe the topology; the broker kind "
                                     "changes only the namespace's address")
def test_each_node_emits_start_running_complete_with_its_datasets(
        broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lineage.jsonl"
    file_transport(monkeypatch, path)
    t = chain()
    prepare(t, broker)
    with Publisher("events", broker=broker, topology=t) as pub:
        for n in range(N):
            pub.send({"key": f"k{n % 3}", "n": n, "payload": ""})

    def until(stats: dict[str, Any]) -> bool:
        running = {e["job"]["name"] for e in events_in(path) if e["eventType"] == "RUNNING"}
        return stats["tally"].records_in >= N and running == {"lineage.count", "lineage.tally"}

    asyncio.run(run_nodes(t, broker, ["count", "tally"], seconds=60, signals=False,
                          until=until))
    events = events_in(path)
    for e in events:
        validate_event(e)
    jobs = by_job(events)
    assert set(jobs) == {"lineage.count", "lineage.tally"}
    namespace = "kafka://" + broker.split(",")[0]
    expected = {"lineage.count": (["events"], ["counts", "lineage.dlq"]),
                "lineage.tally": (["counts"], ["tallies", "lineage.dlq"])}
    for name, evs in jobs.items():
        kinds = [e["eventType"] for e in evs]
        assert kinds[0] == "START" and kinds[-1] == "COMPLETE", kinds
        assert set(kinds[1:-1]) == {"RUNNING"}, kinds
        assert len({e["run"]["runId"] for e in evs}) == 1  # one run per process and node
        for e in evs:
            ins, outs = expected[name]
            assert [(d["namespace"], d["name"]) for d in e["inputs"]] == \
                [(namespace, s) for s in ins]
            assert [(d["namespace"], d["name"]) for d in e["outputs"]] == \
                [(namespace, s) for s in outs]
            for d in [*e["inputs"], *e["outputs"]]:
                avro = t.codec(d["name"]).schema.json
                assert [f["name"] for f in d["facets"]["schema"]["fields"]] == \
                    [f["name"] for f in avro["fields"]]
            assert e["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
            assert e["run"]["facets"]["processing_engine"]["name"] == "doa"
    assert jobs["lineage.count"][0]["run"]["runId"] != jobs["lineage.tally"][0]["run"]["runId"]


@pytest.mark.brokers("tansu", reason="as above")
def test_a_failed_run_ends_its_nodes_runs_with_fail_and_the_error(
        broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "lineage.jsonl"
    file_transport(monkeypatch, path)
    t = Topology("broken", schemas=SCHEMAS)
    events = t.stream("events", schema="testing.Event", key="key")
    counts = t.stream("counts", schema="testing.Count", key="key")

    @t.node(reads=events, writes=counts, state=threading.Lock)  # not picklable: a StepError
    def hold(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, []

    prepare(t, broker)
    with Publisher("events", broker=broker, topology=t) as pub:
        pub.send({"key": "k", "n": 1, "payload": ""})
    with pytest.raises(StepError, match="picklable"):
        asyncio.run(run_nodes(t, broker, ["hold"], seconds=60, signals=False))
    evs = by_job(events_in(path))["broken.hold"]
    for e in evs:
        validate_event(e)
    assert evs[0]["eventType"] == "START" and evs[-1]["eventType"] == "FAIL"
    assert "picklable" in evs[-1]["run"]["facets"]["errorMessage"]["message"]
