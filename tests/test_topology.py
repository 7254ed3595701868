"""Topology validation: one test per wiring mistake, each naming the node and stream involved."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doa import Topology, TopologyError
from doa.errors import SchemaError
from doa.topology.loader import load_topology
from doa.topology.validate import valid_name

REPO = Path(__file__).resolve().parent.parent

ITEM = {"type": "record", "name": "item", "namespace": "t",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}


def step(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
    return state, []


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    d = tmp_path / "schemas"
    d.mkdir()
    (d / "item.avsc").write_text(json.dumps(ITEM))
    (d / "word.avsc").write_text(json.dumps("string"))
    return d


def base(schemas: Path) -> Topology:
    """A correct topology: src -> copy -> dst; each test adds one mistake to it."""
    t = Topology("t", schemas=schemas)
    src = t.stream("src", schema="t.item", key="k", partitions=2)
    dst = t.stream("dst", schema="item", key="k", partitions=2)
    t.node(reads=src, writes=dst, name="copy")(step)
    return t


def only(t: Topology, *words: str) -> str:
    """The single problem of ``t``; it must contain every one of ``words``."""
    found = t.validate()
    assert len(found) == 1, found
    for w in words:
        assert w in found[0], (w, found[0])
    with pytest.raises(TopologyError) as info:
        t.check()
    assert info.value.problems == found
    assert info.value.topology == t.name
    return found[0]


def test_base_topology_is_valid(schemas: Path) -> None:
    t = base(schemas)
    assert t.validate() == []
    t.check()


def test_node_reads_undeclared_stream(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="nowhere", name="lost")(step)
    only(t, "node 'lost'", "'nowhere'", "not declared", "reads")


def test_node_writes_undeclared_stream(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="src", writes=["dst2"], name="leaky")(step)
    msg = only(t, "node 'leaky'", "'dst2'", "not declared", "writes")
    assert "reads" not in msg


def test_node_reads_nothing(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads=(), name="idle")(step)
    only(t, "node 'idle'", "reads no stream")


def test_node_reads_same_stream_twice(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads=["src", "src"], name="twice")(step)
    only(t, "node 'twice'", "'src'", "more than once")


def test_two_writers_need_shared(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="src", writes="dst", name="also")(step)
    only(t, "stream 'dst'", "'copy'", "'also'", "shared=True")


def test_two_writers_fine_when_shared(schemas: Path) -> None:
    t = Topology("t", schemas=schemas)
    t.stream("src", schema="t.item")
    t.stream("dst", schema="t.item", shared=True)
    t.node(reads="src", writes="dst", name="one")(step)
    t.node(reads="src", writes="dst", name="two")(step)
    assert t.validate() == []
    assert t.writers("dst") == ["one", "two"]


def test_every_node_may_write_dead_letters(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="src", writes=t.dead_letters, name="a")(step)
    t.node(reads="src", writes=t.dead_letters, name="b")(step)
    assert t.validate() == []


@pytest.mark.parametrize("name", [
    "has space", "slash/es", "col:on", "ünïcode", "star*", "x" * 250, ".", "..", "",
    "trailing-newline\n",
])
def test_invalid_topic_name(schemas: Path, name: str) -> None:
    t = base(schemas)
    t.stream(name, schema="t.item")
    only(t, f"stream {name!r}", "not a valid Kafka topic name")
    assert not valid_name(name)


@pytest.mark.parametrize("name", ["x" * 249, "a.b_c-D9", "...", "_", "-"])
def test_valid_topic_names(schemas: Path, name: str) -> None:
    t = base(schemas)
    t.stream(name, schema="t.item")
    assert t.validate() == []


def test_invalid_node_name(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="src", name="bad name")(step)
    only(t, "node 'bad name'", "not a valid name")


def test_key_field_not_in_schema(schemas: Path) -> None:
    t = base(schemas)
    t.stream("keyed", schema="t.item", key="sensor")
    only(t, "stream 'keyed'", "key field 'sensor'", "t.item", "fields: k, v")


def test_key_needs_a_record_schema(schemas: Path) -> None:
    t = base(schemas)
    t.stream("words", schema="word")
    only(t, "stream 'words'", "must be a record")


def test_schema_not_found(schemas: Path) -> None:
    t = base(schemas)
    t.stream("ghost", schema="t.nothing")
    only(t, "stream 'ghost'", "schema 't.nothing' not found", str(schemas))


@pytest.mark.parametrize("partitions", [0, -3])
def test_partitions_below_one(schemas: Path, partitions: int) -> None:
    t = base(schemas)
    t.stream("empty", schema="t.item", partitions=partitions)
    only(t, "stream 'empty'", f"got {partitions}", "positive")


def test_streams_are_backward_transitive_unless_they_say_otherwise(schemas: Path) -> None:
    t = base(schemas)
    assert {s.compatibility for s in t.streams.values()} == {"BACKWARD_TRANSITIVE"}
    assert t.stream("loose", schema="t.item", compatibility="none").compatibility == "NONE"
    assert t.validate() == []


def test_unknown_compatibility_level(schemas: Path) -> None:
    t = base(schemas)
    t.stream("odd", schema="t.item", compatibility="SIDEWAYS")
    only(t, "stream 'odd'", "compatibility level 'SIDEWAYS'", "BACKWARD_TRANSITIVE")


def test_copartitioned_inputs_need_equal_counts(schemas: Path) -> None:
    t = base(schemas)
    t.stream("other", schema="t.item", key="k", partitions=3)
    t.node(reads=["src", "other"], name="join")(step)
    only(t, "node 'join'", "src: 2", "other: 3", "different partition counts")


def test_stream_declared_twice(schemas: Path) -> None:
    t = base(schemas)
    t.stream("src", schema="t.item")
    only(t, "stream 'src'", "declared twice")


def test_dead_letter_stream_declared_again(schemas: Path) -> None:
    t = base(schemas)
    t.stream("t.dlq", schema="t.item")
    assert any("stream 't.dlq'" in p and "declared twice" in p for p in t.validate())


def test_node_declared_twice(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="src", name="copy")(step)
    # the second "copy" writes nothing, so the only problem is the duplicate name
    only(t, "node 'copy'", "declared twice")


def test_all_problems_reported_at_once(schemas: Path) -> None:
    t = base(schemas)
    t.node(reads="nowhere", name="lost")(step)
    t.stream("bad topic", schema="t.item")
    t.stream("keyed", schema="t.item", key="missing")
    found = t.validate()
    assert len(found) == 3, found
    assert any("'lost'" in p and "'nowhere'" in p for p in found)
    assert any("'bad topic'" in p for p in found)
    assert any("'keyed'" in p and "'missing'" in p for p in found)
    with pytest.raises(TopologyError) as info:
        t.check()
    assert info.value.problems == found
    assert "has 3 problems" in str(info.value)
    for p in found:
        assert p in str(info.value)


def test_broken_schema_file_still_reports_wiring(schemas: Path) -> None:
    (schemas / "broken.avsc").write_text("{not json")
    t = base(schemas)
    t.node(reads="nowhere", name="lost")(step)
    found = t.validate()
    assert len(found) == 2, found
    assert "broken.avsc" in found[0] and "not valid JSON" in found[0]
    assert "'lost'" in found[1] and "'nowhere'" in found[1]


def test_missing_schema_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        Topology("t", schemas=tmp_path / "nope")


def test_a_relative_schemas_path_is_the_topology_files_and_the_error_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A walk's project: ``pipelines/iot.py`` with ``schemas="schemas"``, run from the project
    folder that holds ``schemas/``; the error names the path that would work, and it does."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "pipelines").mkdir()
    path = tmp_path / "pipelines" / "iot.py"
    path.write_text('from doa import Topology\ntopology = Topology("iot", schemas="schemas")\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SchemaError) as refused:
        load_topology(str(path))
    assert str(refused.value).endswith(
        "does not exist; a relative schemas= is read from the topology file's folder: "
        "schemas='../schemas'"), refused.value
    path.write_text('from doa import Topology\ntopology = Topology("iot", schemas="../schemas")\n')
    assert load_topology(str(path)).name == "iot"


# -- with the repository's schemas (cross-file named types) -----------------------------------
def test_repo_schemas_with_a_mistake() -> None:
    t = Topology("repo", schemas=REPO / "schemas")
    readings = t.stream("readings", schema="sensors.reading", key="sensor_id", partitions=4)
    alerts = t.stream("alerts", schema="alert", key="sensor_id", partitions=2)
    t.stream("located", schema="sensors.Location", key="sensor_id")

    @t.node(reads=[readings, alerts], writes="ghost")
    def join(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, []

    found = t.validate()
    assert len(found) == 3, found
    assert any("stream 'located'" in p and "'sensor_id'" in p and "lat, lon" in p
               for p in found)
    assert any("node 'join'" in p and "readings: 4" in p and "alerts: 2" in p for p in found)
    assert any("node 'join'" in p and "'ghost'" in p for p in found)


def test_repo_topology_is_valid() -> None:
    topology = load_topology(str(REPO / "topologies" / "sensors.py"))
    assert topology.validate() == []
    assert topology.streams["readings"].partitions == 4
    assert [n.name for n in topology.order()] == ["flag_spikes"]


def test_order_puts_writers_first(schemas: Path) -> None:
    t = Topology("t", schemas=schemas)
    for s in ("a", "b", "c"):
        t.stream(s, schema="t.item")
    t.node(reads="b", writes="c", name="second")(step)
    t.node(reads="a", writes="b", name="first")(step)
    assert [n.name for n in t.order()] == ["first", "second"]
