"""The in-memory harness on topologies with a loop (a node reads what its own outputs cause),
and on merged inputs fed by another node: records published all at once.

A loop has its effect while the data flows (the learner reads a drift event before it has read
every feature and label), and a node merging several inputs still gets them in the order of
the complete logs whatever the batch size.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import doa.testing
from doa.events import Event
from doa.testing import Harness
from doa.topology.topology import Topology
from topologies import fraud

ITEM = {"type": "record", "name": "item", "namespace": "t",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}
LIMIT = 10  # the watcher tells the counter to start again from 0 at this count


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    (tmp_path / "item.avsc").write_text(json.dumps(ITEM))
    return tmp_path


def looping(schemas: Path) -> Topology:
    """``count`` numbers its records; ``watch`` tells it to start again when it reaches LIMIT."""
    t = Topology("loop", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k")
    out = t.stream("out", schema="t.item", key="k")
    back = t.stream("back", schema="t.item", key="k")

    @t.node(reads=[src, back], writes=out, state=lambda: {"n": 0, "resets": 0})
    def count(state: dict[str, Any], batch: list[Event]) -> tuple[Any, list[Any]]:
        outs = []
        for e in batch:
            if e.stream == "back":
                state["n"], state["resets"] = 0, state["resets"] + 1
            else:
                state["n"] += 1
                outs.append((e, {"k": e["k"], "v": state["n"]}))
        return state, outs

    @t.node(reads=out, writes=back)
    def watch(state: Any, batch: list[Event]) -> tuple[Any, list[Any]]:
        return state, [(e, dict(e)) for e in batch if e["v"] >= LIMIT]

    return t


def test_a_loop_feeds_back_while_the_data_flows(schemas: Path) -> None:
    h = Harness(looping(schemas), batch_size=4)
    h.publish("src", [{"k": "a", "v": i} for i in range(100)], timestamps=range(100))
    h.run()
    counts = [e["v"] for e in h.records("out")]
    assert len(counts) == 100
    # count takes 4 records, watch answers, count reads the answer (it has the timestamp of
    # the record that caused it) before its next 4: it reaches LIMIT, finishes its batch
    # (12), then starts again from 1
    assert counts[:16] == [*range(1, 13), 1, 2, 3, 4]
    assert max(counts) == 12
    assert h.state("count")[0]["resets"] == len(h.records("back"))


def test_a_loop_gives_the_same_logs_on_every_run(schemas: Path) -> None:
    def logs() -> dict[str, Any]:
        h = doa.testing.run(looping(schemas), {"src": [{"k": f"k{i % 3}", "v": i}
                                                       for i in range(60)]}, batch_size=5)
        return {s: [[(r.offset, r.timestamp, r.value) for r in part] for part in parts]
                for s, parts in h.logs.items()}

    assert logs() == logs()


def merging(schemas: Path) -> Topology:
    """``double`` feeds ``both``, which also reads ``side`` directly."""
    t = Topology("merge", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k")
    side = t.stream("side", schema="t.item", key="k")
    doubled = t.stream("doubled", schema="t.item", key="k")
    seen = t.stream("seen", schema="t.item", key="k")

    @t.node(reads=src, writes=doubled)
    def double(state: Any, batch: list[Event]) -> tuple[Any, list[Any]]:
        return state, [(e, {"k": e["k"], "v": 2 * e["v"]}) for e in batch]

    @t.node(reads=[doubled, side], writes=seen)
    def both(state: Any, batch: list[Event]) -> tuple[Any, list[Any]]:
        return state, [(e, dict(e)) for e in batch]

    return t


@pytest.mark.parametrize("batch_size", [1, 3, 256])
def test_merged_inputs_come_in_timestamp_order_whatever_the_batch_size(
        schemas: Path, batch_size: int) -> None:
    h = Harness(merging(schemas), batch_size=batch_size)
    h.publish("src", [{"k": "a", "v": i} for i in range(20)], timestamps=range(0, 40, 2))
    h.publish("side", [{"k": "a", "v": -i} for i in range(20)], timestamps=range(1, 41, 2))
    h.run()
    assert [e["v"] for e in h.records("seen")] == [v for i in range(20) for v in (2 * i, -i)]


def test_the_fraud_learner_resets_on_drift_with_everything_published_at_once() -> None:
    n = 12_000
    h = Harness(fraud.topology, batch_size=500)
    items = list(fraud.demo_source(n, 7))
    for stream in ("transactions", "labels"):
        rows = [(record, ts) for s, record, ts in items if s == stream]
        h.publish(stream, [r for r, _ in rows], timestamps=[ts for _, ts in rows])
    h.run()
    drifts = h.records("drift")
    resets = [m for m in h.records("models") if m["action"] == "reset"]
    assert drifts and len(resets) == len(drifts)
    # each reset came while labels still flowed, and the new version made predictions
    assert all(m["labels"] < n for m in resets), [m["labels"] for m in resets]
    versions = [p["model_version"] for p in h.records("predictions")]
    assert versions == sorted(versions)
    assert all(m["version"] in versions for m in resets)
    assert h.state("scorer")[0]["labels"] == n and h.records("unmatched") == []
