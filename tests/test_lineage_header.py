"""Lineage headers v1 and v2 round-trip, and a step can say which model made an output."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from doa.errors import StepError
from doa.events import (
    Coordinates,
    Event,
    Lineage,
    Out,
    header_id,
    pack_lineage,
    pack_output_lineage,
    unpack_lineage,
)
from doa.testing import Harness
from doa.topology.topology import Topology
from doa.wire.schema import builtin_schema_dir

ids = st.binary(min_size=16, max_size=16)
names = st.text(st.characters(codec="utf-8"), min_size=1,
                max_size=30).filter(lambda s: len(s.encode()) <= 255)
coords = st.builds(Coordinates, names, st.integers(0, 2**31 - 1), st.integers(0, 2**63 - 1))
versions = st.integers(0, 2**64 - 1)


@given(ids, names, st.binary(min_size=8, max_size=8), st.lists(ids, max_size=5), versions)
def test_version_1_round_trips(id_: bytes, node: str, fp: bytes, parents: list[bytes],
                               version: int) -> None:
    lin = Lineage(id_, node, fp, tuple(parents), version)
    packed = pack_lineage(lin)
    assert packed[0] == 1
    assert unpack_lineage(packed) == lin
    assert header_id([("doa", packed)]) == id_


@given(ids, names, st.binary(min_size=8, max_size=8),
       st.lists(st.tuples(ids, coords), min_size=1, max_size=5), versions)
def test_version_2_round_trips(id_: bytes, node: str, fp: bytes,
                               parents: list[tuple[bytes, Coordinates]], version: int) -> None:
    lin = Lineage(id_, node, fp, tuple(p for p, _ in parents), version,
                  tuple(c for _, c in parents))
    packed = pack_lineage(lin)
    assert packed[0] == 2
    assert unpack_lineage(packed) == lin
    assert header_id([("doa", packed)]) == id_


@given(ids, names, st.binary(min_size=8, max_size=8),
       st.lists(st.tuples(ids, coords), min_size=1, max_size=4), st.integers(0, 2**63))
def test_the_runtime_packer_equals_pack_lineage(id_: bytes, node: str, fp: bytes,
                                                parents: list[tuple[bytes, Coordinates]],
                                                version: int) -> None:
    events = [Event({}, stream=c.stream, partition=c.partition, offset=c.offset, timestamp=0,
                    id=p) for p, c in parents]
    fast = pack_output_lineage(id_, node.encode(), fp, events, version)
    assert fast == pack_lineage(Lineage(id_, node, fp, tuple(p for p, _ in parents), version,
                                        tuple(c for _, c in parents)))


def test_unknown_version_and_truncation_are_refused() -> None:
    lin = Lineage(b"\1" * 16, "n", b"\0" * 8, (b"\2" * 16,), 0, (Coordinates("s", 0, 1),))
    packed = pack_lineage(lin)
    with pytest.raises(ValueError, match="version 3"):
        unpack_lineage(b"\3" + packed[1:])
    with pytest.raises(ValueError, match="truncated"):
        unpack_lineage(packed[:40])
    with pytest.raises(ValueError, match="1 parents but 2 coordinates"):
        pack_lineage(lin._replace(coordinates=(Coordinates("s", 0, 1),) * 2))


def _topology() -> Topology:
    t = Topology("mv", schemas=builtin_schema_dir())
    src = t.stream("src", schema="doa.DeadLetter", key="node")
    dst = t.stream("dst", schema="doa.DeadLetter", key="node")
    metrics = t.stream("metrics", schema="doa.Metric", key="model")

    @t.node(reads=src, writes=[dst, metrics], state=lambda: 0)
    def payout(state: int, batch: list[Any]) -> tuple[int, list[Any]]:
        out: list[Any] = []
        for e in batch:
            out.append(Out(e, dict(e), dst, model_version=e["offset"] + 40))
            out.append((e, metrics, {"model": "m", "model_version": 7, "metric": "x",
                                     "value": 1.0, "labels": 1, "timestamp": 0}))
            out.append((e, dst, dict(e)))
        return state, out

    return t


def _letter(offset: int) -> dict[str, Any]:
    return dict(stream="s", partition=0, offset=offset, node="n", error_type="", message="",
                raw=b"", timestamp=0)


def test_a_custom_step_sets_the_model_version_of_its_outputs() -> None:
    h = Harness(_topology())
    h.publish("src", [_letter(1), _letter(2)])
    h.run()
    dst = [(e["offset"], e.lineage) for e in h.records("dst")]
    # Out(..., model_version=) is in the header; a plain output without the field is 0
    assert sorted((o, lin.model_version) for o, lin in dst if lin) == [(1, 0), (1, 41),
                                                                       (2, 0), (2, 42)]
    # a record whose schema has model_version carries it without being told
    assert [e.lineage.model_version for e in h.records("metrics") if e.lineage] == [7, 7]
    src = h.records("src")
    for e in h.records("dst"):
        lin = e.lineage
        assert lin is not None
        [where] = lin.coordinates
        parent = src[where.offset]
        assert (where.stream, lin.parents) == ("src", (parent.id,))


def test_out_needs_a_stream_when_the_node_writes_several() -> None:
    t = Topology("mv2", schemas=builtin_schema_dir())
    src = t.stream("src", schema="doa.DeadLetter", key="node")
    a = t.stream("a", schema="doa.DeadLetter", key="node")
    b = t.stream("b", schema="doa.DeadLetter", key="node")

    @t.node(reads=src, writes=[a, b], state=lambda: 0)
    def both(state: int, batch: list[Any]) -> tuple[int, list[Any]]:
        return state, [Out(e, dict(e), model_version=1) for e in batch]

    h = Harness(t)
    h.publish("src", [_letter(1)])
    h.run()
    [dead] = h.dead_letters
    assert dead["error_type"] == StepError.__name__
    assert "must name the stream" in dead["message"]
