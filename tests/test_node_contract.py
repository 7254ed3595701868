"""The node-kind contract (doa.node.NodeKind), checked on every node of every shipped topology,
and a new kind defined here, in one place, running end to end in the harness.

Like River's ``checks``: the checks are generated per node, so a kind or a topology added
later is checked without a new test.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from doa import Topology
from doa.detector import DetectorSpec
from doa.join import JoinSpec
from doa.kernels.node import KernelSpec
from doa.learner.spec import LearnerSpec
from doa.model.spec import ModelSpec
from doa.node import Declared, Node, NodeKind, StreamInfo, missing_fields, stream_name
from doa.testing import Harness
from doa.topology.loader import load_topology
from doa.topology.validate_nodes import TopologyStreams

REPO = Path(__file__).resolve().parent.parent
FILES = sorted([*(REPO / "topologies").glob("*.py"), *(REPO / "tests" / "topologies").glob("*.py")])
TOPOLOGIES = [load_topology(str(p)) for p in FILES if p.name != "__init__.py"]
NODES = [(t, n) for t in TOPOLOGIES for n in t.nodes.values()]
IDS = [f"{t.name}:{n.name}" for t, n in NODES]
BUILT_IN = {Declared, KernelSpec, LearnerSpec, DetectorSpec, ModelSpec, JoinSpec}


def test_every_built_in_kind_appears_in_a_shipped_topology() -> None:
    assert {type(n.spec) for _, n in NODES} >= BUILT_IN


@pytest.mark.parametrize(("topology", "node"), NODES, ids=IDS)
def test_node_fulfils_the_contract(topology: Topology, node: Node) -> None:
    spec = node.spec
    assert isinstance(spec, NodeKind) and spec.kind == node.kind
    assert spec.streams() == (node.reads, node.writes)
    about = node.describe()
    assert json.loads(json.dumps(about)) == about
    assert about["kind"] == node.kind and about["reads"] == list(node.reads)
    named = about.get("streams", {})
    assert isinstance(named, dict)
    for value in named.values():  # every stream a kind names by role is one it declares
        assert set([value] if isinstance(value, str) else value) <= {*node.reads, *node.writes}
    problems = spec.checks(node, TopologyStreams(topology))
    assert problems == [] and topology.validate() == []
    assert callable(spec.start)


@pytest.mark.parametrize(("topology", "node"),
                         [(t, n) for t, n in NODES if not isinstance(n.spec, Declared)],
                         ids=[i for i, (_, n) in zip(IDS, NODES, strict=True)
                              if not isinstance(n.spec, Declared)])
def test_a_kinds_checks_see_a_schema_that_lacks_its_fields(topology: Topology,
                                                           node: Node) -> None:
    class Empty:  # every stream's schema has one field, which no kind uses
        def fields(self, stream: str) -> dict[str, Any] | None:
            return {"unused": "string"}

        def schema(self, stream: str) -> str | None:
            return "nobody.Nothing"

    found = node.spec.checks(node, Empty())
    assert found and all(p.startswith(f"{node.kind} {node.name!r}: ") for p in found)


def test_a_node_built_the_old_way_keeps_its_start_hook() -> None:
    calls: list[int] = []
    t = Topology("old", schemas=REPO / "tests" / "schemas")
    t.stream("events", schema="testing.Event")
    t.add_node(Node("legacy", ("events",), (), lambda s, b: (s, []), dict, kind="legacy",
                    options={"on_start": lambda: calls.append(1)}))
    Harness(t)
    assert calls == [1] and t.nodes["legacy"].spec.kind == "legacy"


# -- a new kind, in one place -------------------------------------------------------------------
@dataclass(frozen=True)
class Threshold(NodeKind):
    """Pass on the records whose ``field`` is above ``limit``; the state counts them."""

    kind = "threshold"
    source: str
    target: str
    field: str
    limit: float

    def streams(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (self.source,), (self.target,)

    def checks(self, node: Node, streams: StreamInfo) -> list[str]:
        return missing_fields(node, streams, self.source, [self.field], "watched")

    def start(self) -> None:
        STARTED.append(self)

    def describe(self) -> dict[str, Any]:
        return {"field": self.field, "limit": self.limit,
                "streams": {"source": self.source, "alerts": self.target}}


STARTED: list[Threshold] = []


def threshold(name: str, *, reads: Any, writes: Any, field: str, limit: float) -> Node:
    spec = Threshold(str(stream_name(reads)), str(stream_name(writes)), field, limit)

    def step(state: int, batch: list[Any]) -> tuple[int, list[Any]]:
        out = [(e, dict(e)) for e in batch if e[field] > limit]
        return state + len(out), out

    return spec.node(name, step, 0)


def new_kind_topology(field: str = "n") -> Topology:
    t = Topology("thresholds", schemas=REPO / "tests" / "schemas")
    events = t.stream("events", schema="testing.Event", key="key", partitions=2)
    big = t.stream("big", schema="testing.Event", key="key", partitions=2)
    t.add_node(threshold("big_ones", reads=events, writes=big, field=field, limit=5))
    return t


def test_a_new_kind_runs_end_to_end_in_the_harness() -> None:
    STARTED.clear()
    t = new_kind_topology()
    h = Harness(t)
    records: list[dict[str, Any]] = [{"key": f"k{i % 3}", "n": (i * 7) % 11, "payload": ""}
                                     for i in range(40)]
    h.publish("events", records)
    h.run()
    expected = [r for r in records if r["n"] > 5]  # a plain loop
    got = [dict(e) for e in h.records("big")]
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert sum(h.state("big_ones").values()) == len(expected)
    assert [t.nodes["big_ones"].spec] == STARTED  # the runtime called the start hook once
    assert t.nodes["big_ones"].describe()["limit"] == 5


def test_a_new_kinds_checks_run_in_validate() -> None:
    t = new_kind_topology(field="size")
    assert t.validate() == ["threshold 'big_ones': watched field 'size' is not a field of "
                            "stream 'events' (testing.Event: key, n, payload)"]
