"""Schema evolution checks, as Confluent Schema Registry levels them.

BACKWARD: the new schema reads data written with the old one. FORWARD: the old schema reads
data written with the new one. FULL: both. The ``_TRANSITIVE`` levels ask it of every
registered version (v1 -> v2 -> v3 below). References: avro's own
``ReaderWriterCompatibilityChecker`` for the verdict, and avro's ``DatumReader`` resolving real
data for every change called compatible.
"""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import avro.errors
import avro.io
import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from doa.cluster.registry import Registered, plan_registration
from doa.errors import CompatibilityError
from doa.topology.topology import Topology
from doa.wire.compat import (
    DEFAULT_LEVEL,
    LEVELS,
    against_history,
    check_compatible,
    incompatibilities,
)

LOCATION: dict[str, Any] = {"type": "record", "name": "Location", "fields": [
    {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}
OLD: dict[str, Any] = {
    "type": "record", "name": "reading", "namespace": "sensors", "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "ts", "type": "long"},
        {"name": "value", "type": "double"},
        {"name": "count", "type": "int"},
        {"name": "location", "type": LOCATION},
        {"name": "unit", "type": ["null", "string"], "default": None},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "tags", "type": {"type": "array", "items": "int"}},
    ]}


def changed(**changes: Any) -> dict[str, Any]:
    """OLD with fields replaced (a dict), removed (None) or added (a new name)."""
    new = copy.deepcopy(OLD)
    fields = {f["name"]: f for f in new["fields"]}
    for name, field in changes.items():
        if field is None:
            del fields[name]
        else:
            fields[name] = {"name": name, **field}
    new["fields"] = list(fields.values())
    return new


def nested(**location_fields: Any) -> dict[str, Any]:
    loc = copy.deepcopy(LOCATION)
    by_name = {f["name"]: f for f in loc["fields"]}
    for name, field in location_fields.items():
        if field is None:
            del by_name[name]
        else:
            by_name[name] = {"name": name, **field}
    loc["fields"] = list(by_name.values())
    return changed(location={"type": loc})


# --- what the issue asks, one by one -----------------------------------------------------------


def test_adding_a_field_with_a_default_passes_every_level() -> None:
    new = changed(quality={"type": "int", "default": 100})
    for level in LEVELS:
        assert incompatibilities(OLD, new, level) == []
        check_compatible("readings", OLD, new, level)


def test_adding_a_field_without_a_default_fails_backward_and_names_it() -> None:
    new = changed(quality={"type": "int"})
    found = incompatibilities(OLD, new, "BACKWARD")
    assert found == ["field 'reading.quality' (int) has no default: data written with the old "
                     "schema has no value for it"]
    with pytest.raises(CompatibilityError) as info:
        check_compatible("readings", OLD, new)
    assert info.value.level == "BACKWARD" and info.value.stream == "readings"
    assert info.value.problems == found
    assert "stream 'readings'" in str(info.value) and "reading.quality" in str(info.value)
    # old readers just skip the new field
    assert incompatibilities(OLD, new, "FORWARD") == []


def test_removing_a_field_without_a_default() -> None:
    new = changed(count=None)
    # BACKWARD passes, as in Confluent Schema Registry: a reader of the new schema skips the
    # field it no longer has in old data. What breaks is the other direction: readers still
    # on the old schema find no value and no default for it in new data.
    assert incompatibilities(OLD, new, "BACKWARD") == []
    for level in ("FORWARD", "FULL"):
        found = incompatibilities(OLD, new, level)
        assert len(found) == 1 and found[0].startswith("field 'reading.count' (int) has no default")
        with pytest.raises(CompatibilityError, match=r"reading\.count"):
            check_compatible("readings", OLD, new, level)


def test_removing_a_field_with_a_default_passes() -> None:
    new = changed(unit=None)
    for level in LEVELS:
        assert incompatibilities(OLD, new, level) == []


@pytest.mark.parametrize(("field", "wide", "narrow"), [("ts", "long", "int"),
                                                       ("value", "double", "float")])
def test_narrowing_a_type_fails_and_names_the_field(field: str, wide: str, narrow: str) -> None:
    new = changed(**{field: {"type": narrow}})
    found = incompatibilities(OLD, new)
    assert found == [f"field 'reading.{field}': reader type: {narrow} not compatible with writer "
                     f"type: {wide} (reading data written with the old schema)"]
    assert incompatibilities(OLD, new, "FULL") == found
    # the other way round it is a promotion: fine backward, not forward
    assert incompatibilities(new, OLD) == []
    assert incompatibilities(new, OLD, "FORWARD") != []


def test_nested_record_field_change_names_the_nested_path() -> None:
    found = incompatibilities(OLD, nested(lat={"type": "float"}))
    assert found == ["field 'reading.location.lat': reader type: float not compatible with "
                     "writer type: double (reading data written with the old schema)"]
    found = incompatibilities(OLD, nested(alt={"type": "double"}))
    assert len(found) == 1 and found[0].startswith("field 'reading.location.alt' (double)")
    found = incompatibilities(OLD, nested(lon=None), "FORWARD")
    assert len(found) == 1 and found[0].startswith("field 'reading.location.lon' (double)")


def test_each_problem_names_its_own_field() -> None:
    # avro's checker merges its findings into one set of messages and one of locations;
    # pairing them back up crosswise would blame ts for the double and value for the long.
    new = changed(ts={"type": "int"}, value={"type": "float"}, extra={"type": "string"})
    found = incompatibilities(OLD, new)
    assert sorted(found) == sorted([
        "field 'reading.ts': reader type: int not compatible with writer type: long "
        "(reading data written with the old schema)",
        "field 'reading.value': reader type: float not compatible with writer type: double "
        "(reading data written with the old schema)",
        "field 'reading.extra' (string) has no default: data written with the old schema has "
        "no value for it",
    ])


def test_changes_inside_arrays_enums_and_unions_name_the_field() -> None:
    assert incompatibilities(OLD, changed(tags={"type": {"type": "array", "items": "string"}})
                             ) == ["field 'reading.tags[]': reader type: string not compatible "
                                   "with writer type: int (reading data written with the old "
                                   "schema)"]
    fewer = changed(kind={"type": {"type": "enum", "name": "Kind", "symbols": ["A"]}})
    (problem,) = incompatibilities(OLD, fewer)
    assert problem.startswith("field 'reading.kind': ") and "'B'" in problem
    (problem,) = incompatibilities(OLD, changed(unit={"type": ["null", "long"], "default": None}))
    assert problem.startswith("field 'reading.unit': ")


def test_unknown_level() -> None:
    with pytest.raises(ValueError, match="SIDEWAYS"):
        incompatibilities(OLD, OLD, "SIDEWAYS")
    assert incompatibilities(OLD, OLD, "full") == []


# --- against avro's checker and avro's reader ---------------------------------------------------

CHANGES: dict[str, dict[str, Any]] = {
    "same": OLD,
    "add with default": changed(quality={"type": "int", "default": 1}),
    "add without default": changed(quality={"type": "int"}),
    "remove without default": changed(count=None),
    "remove with default": changed(unit=None),
    "long to int": changed(ts={"type": "int"}),
    "int to long": changed(count={"type": "long"}),
    "int to double": changed(count={"type": "double"}),
    "double to float": changed(value={"type": "float"}),
    "string to bytes": changed(sensor_id={"type": "bytes"}),
    "string to int": changed(sensor_id={"type": "int"}),
    "make optional": changed(sensor_id={"type": ["null", "string"], "default": None}),
    "make required": changed(unit={"type": "string", "default": ""}),
    "enum gains a symbol": changed(kind={"type": {"type": "enum", "name": "Kind",
                                                  "symbols": ["A", "B", "C"]}}),
    "enum loses a symbol": changed(kind={"type": {"type": "enum", "name": "Kind",
                                                  "symbols": ["A"]}}),
    "enum renamed": changed(kind={"type": {"type": "enum", "name": "Sort",
                                           "symbols": ["A", "B"]}}),
    "array items widen": changed(tags={"type": {"type": "array", "items": "long"}}),
    "array items narrow": changed(tags={"type": {"type": "array", "items": "string"}}),
    "nested narrow": nested(lat={"type": "float"}),
    "nested add without default": nested(alt={"type": "double"}),
    "nested remove": nested(lon=None),
    "record renamed": {**OLD, "name": "measurement"},
}


def avro_says_compatible(reader: Any, writer: Any) -> bool:
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(
        avro.schema.parse(json.dumps(reader)), avro.schema.parse(json.dumps(writer)))
    return bool(result.compatibility is SchemaCompatibilityType.compatible)


def sample(schema: Any) -> Any:
    """One value of ``schema`` (a non-null branch of unions, the first enum symbol)."""
    if isinstance(schema, list):
        return sample(next(b for b in schema if b != "null"))
    if isinstance(schema, dict):
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: sample(f["type"]) for f in schema["fields"]}
        if kind == "enum":
            return schema["symbols"][-1]
        if kind == "array":
            return [sample(schema["items"])] * 2
        return sample(kind)
    return {"string": "s", "bytes": b"b", "int": 7, "long": 2**40, "float": 0.5,
            "double": 0.25, "boolean": True, "null": None}[schema]


def resolves(reader: Any, writer: Any) -> Any:
    """Write a record with avro, read it back into ``reader`` with fastavro's resolution.

    (avro's own DatumReader does not implement all of the spec's promotions: it refuses int
    items read as long items, and string read as bytes.)
    """
    writer_schema = avro.schema.parse(json.dumps(writer))
    buf = io.BytesIO()
    avro.io.DatumWriter(writer_schema).write(sample(writer), avro.io.BinaryEncoder(buf))
    buf.seek(0)
    out = fastavro.schemaless_reader(buf, fastavro.parse_schema(writer),
                                     fastavro.parse_schema(reader))
    assert buf.read() == b""
    return out


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_verdicts_agree_with_avro(change: str) -> None:
    new = CHANGES[change]
    backward = avro_says_compatible(reader=new, writer=OLD)
    forward = avro_says_compatible(reader=OLD, writer=new)
    assert (incompatibilities(OLD, new, "BACKWARD") == []) == backward
    assert (incompatibilities(OLD, new, "FORWARD") == []) == forward
    assert (incompatibilities(OLD, new, "FULL") == []) == (backward and forward)
    # what is called compatible really resolves, record by record
    if backward:
        resolves(reader=new, writer=OLD)
    if forward:
        resolves(reader=OLD, writer=new)


def test_the_cases_cover_both_verdicts_both_ways() -> None:
    verdicts = {(incompatibilities(OLD, new, "BACKWARD") == [],
                 incompatibilities(OLD, new, "FORWARD") == []) for new in CHANGES.values()}
    assert verdicts == {(True, True), (True, False), (False, True), (False, False)}


def test_every_problem_names_a_field_of_the_change() -> None:
    expected = {
        "add without default": ("BACKWARD", "reading.quality"),
        "remove without default": ("FORWARD", "reading.count"),
        "long to int": ("BACKWARD", "reading.ts"),
        "string to int": ("FULL", "reading.sensor_id"),
        "make optional": ("FORWARD", "reading.sensor_id"),
        "enum loses a symbol": ("BACKWARD", "reading.kind"),
        "nested narrow": ("BACKWARD", "reading.location.lat"),
        "nested remove": ("FORWARD", "reading.location.lon"),
        "array items narrow": ("BACKWARD", "reading.tags[]"),
    }
    for change, (level, path) in expected.items():
        found = incompatibilities(OLD, CHANGES[change], level)
        assert found, change
        assert all(f"'{path}'" in problem for problem in found), (change, found)


# --- a stream's history: every registered version, not only the latest -------------------------

V1: dict[str, Any] = {"type": "record", "name": "T", "namespace": "h", "fields": [
    {"name": "id", "type": "string"}, {"name": "n", "type": "long"}]}
V2: dict[str, Any] = {"type": "record", "name": "T", "namespace": "h", "fields": [
    {"name": "id", "type": "string"}]}
V3: dict[str, Any] = {"type": "record", "name": "T", "namespace": "h", "fields": [
    {"name": "id", "type": "string"}, {"name": "n", "type": "string", "default": ""}]}
HISTORY = [(1, V1), (2, V2)]


def avro_reads(reader: Any, writer: Any) -> bool:
    """Whether Apache avro's DatumReader(writer, reader) reads a record written with ``writer``
    into ``reader`` (the definition of ``reader`` being compatible with ``writer``)."""
    writer_schema = avro.schema.parse(json.dumps(writer))
    buf = io.BytesIO()
    avro.io.DatumWriter(writer_schema).write(sample(writer), avro.io.BinaryEncoder(buf))
    buf.seek(0)
    reader_io = avro.io.DatumReader(writer_schema, avro.schema.parse(json.dumps(reader)))
    try:
        reader_io.read(avro.io.BinaryDecoder(buf))
    except avro.errors.SchemaResolutionException:
        return False
    return buf.read() == b""


def test_v3_cannot_read_v1_payloads_though_each_step_is_backward() -> None:
    # the Apache avro reader: v2 reads v1, v3 reads v2, but v3 refuses v1's long for a string
    assert avro_reads(reader=V2, writer=V1) and avro_reads(reader=V3, writer=V2)
    assert not avro_reads(reader=V3, writer=V1)
    # which is what the pairwise checks say too
    assert incompatibilities(V1, V2) == [] and incompatibilities(V2, V3) == []
    assert incompatibilities(V1, V3) != []


def test_v1_v2_v3_is_refused_at_v3_naming_version_1_and_field_n() -> None:
    assert against_history([(1, V1)], V2) == []
    (problem,) = against_history(HISTORY, V3)  # the default level: BACKWARD_TRANSITIVE
    assert problem.startswith("version 1: field 'T.n': "), problem
    assert "string" in problem and "long" in problem
    assert against_history(HISTORY, V3, "BACKWARD") == [], "BACKWARD looks at version 2 only"
    assert against_history(HISTORY, V3, "NONE") == []


def test_every_incompatible_version_is_named() -> None:
    v4 = {**V3, "fields": [{"name": "id", "type": "long"}]}  # breaks id for 1, 2 and 3
    found = against_history([*HISTORY, (3, V3)], v4)
    assert [p.split(": ")[0] for p in found] == ["version 1", "version 2", "version 3"]
    assert all("'T.id'" in p for p in found)


def test_a_first_version_has_nothing_to_break() -> None:
    for level in LEVELS:
        assert against_history([], V3, level) == []


LEVEL_PAIRS = {  # (reader, writer) pairs each level demands of V3 after [V1, V2]
    "NONE": [],
    "BACKWARD": [(V3, V2)],
    "BACKWARD_TRANSITIVE": [(V3, V1), (V3, V2)],
    "FORWARD": [(V2, V3)],
    "FORWARD_TRANSITIVE": [(V1, V3), (V2, V3)],
    "FULL": [(V3, V2), (V2, V3)],
    "FULL_TRANSITIVE": [(V3, V1), (V3, V2), (V1, V3), (V2, V3)],
}


@pytest.mark.parametrize("level", LEVELS)
def test_each_level_accepts_v3_exactly_when_avro_reads_what_it_demands(level: str) -> None:
    # Confluent's definitions: BACKWARD, the new schema reads data of the latest version;
    # FORWARD, the latest version reads data of the new one; FULL, both; _TRANSITIVE, the same
    # with every registered version; NONE, no check. Verdicts from Apache avro's reader.
    expected = all(avro_reads(reader=r, writer=w) for r, w in LEVEL_PAIRS[level])
    assert (against_history(HISTORY, V3, level) == []) == expected
    assert (against_history(HISTORY, V3, level.lower()) == []) == expected


def test_levels_cover_both_verdicts() -> None:
    assert {against_history(HISTORY, V3, level) == [] for level in LEVELS} == {True, False}
    assert set(LEVEL_PAIRS) == set(LEVELS)
    assert DEFAULT_LEVEL == "BACKWARD_TRANSITIVE"


def test_transitive_levels_of_a_pair_are_the_plain_level() -> None:
    for level in ("BACKWARD", "FORWARD", "FULL"):
        assert incompatibilities(V1, V3, f"{level}_TRANSITIVE") == incompatibilities(V1, V3, level)
    assert incompatibilities(V1, V3, "NONE") == []


# --- registration: per-stream levels on a topology ----------------------------------------------


def topology_version(root: Path, schema: dict[str, Any], **stream: Any) -> Topology:
    d = root / f"v{len(list(root.iterdir()))}"
    d.mkdir()
    (d / "t.avsc").write_text(json.dumps(schema))
    t = Topology("h", schemas=d)
    t.stream("things", schema="h.T", key="id", **stream)
    return t


def registered(root: Path, *schemas: dict[str, Any]) -> dict[str, list[Registered]]:
    versions = [topology_version(root, s).codec("things").schema for s in schemas]
    return {"things": [Registered("things", i, v) for i, v in enumerate(versions, 1)]}


def test_registration_refuses_v3_naming_version_1_and_field_n(tmp_path: Path) -> None:
    history = registered(tmp_path, V1, V2)
    with pytest.raises(CompatibilityError) as caught:
        plan_registration(topology_version(tmp_path, V3), history)
    assert caught.value.stream == "things" and caught.value.level == "BACKWARD_TRANSITIVE"
    (problem,) = caught.value.problems
    assert problem.startswith("version 1: field 'T.n': ")
    assert "'things'" in str(caught.value) and "version 1" in str(caught.value)


@pytest.mark.parametrize("level", ["NONE", "BACKWARD", "backward", "FULL"])
def test_a_stream_level_lets_v3_in(tmp_path: Path, level: str) -> None:
    history = registered(tmp_path, V1, V2)
    planned = plan_registration(topology_version(tmp_path, V3, compatibility=level), history)
    assert [(s, v) for s, v, _ in planned if s == "things"] == [("things", 3)]


@pytest.mark.parametrize("level", ["BACKWARD_TRANSITIVE", "FORWARD_TRANSITIVE",
                                   "FULL_TRANSITIVE"])
def test_a_transitive_stream_level_refuses_v3(tmp_path: Path, level: str) -> None:
    history = registered(tmp_path, V1, V2)
    with pytest.raises(CompatibilityError, match=r"version 1: field 'T\.n'"):
        plan_registration(topology_version(tmp_path, V3, compatibility=level), history)


def test_an_explicit_level_overrides_the_streams(tmp_path: Path) -> None:
    history = registered(tmp_path, V1, V2)
    loose = topology_version(tmp_path, V3, compatibility="NONE")
    with pytest.raises(CompatibilityError, match="version 1"):
        plan_registration(loose, history, "BACKWARD_TRANSITIVE")
    planned = plan_registration(topology_version(tmp_path, V3), history, "BACKWARD")
    assert ("things", 3) in [(s, v) for s, v, _ in planned]


def test_none_still_registers_and_going_back_is_checked_unless_none(tmp_path: Path) -> None:
    history = registered(tmp_path, V1, V2)
    breaking = {**V1, "fields": [{"name": "id", "type": "long"}]}
    planned = plan_registration(topology_version(tmp_path, breaking, compatibility="NONE"),
                                history)
    assert ("things", 3) in [(s, v) for s, v, _ in planned]
    # going back to version 1 registers nothing; at NONE it checks nothing (as Confluent's
    # registry takes a known schema); at another level version 1 must read version 2's
    # records, and cannot (its n has no default): walk 6 saw such a revert pass and the
    # nodes dead-letter the later version's records
    back = plan_registration(topology_version(tmp_path, V1, compatibility="NONE"), history)
    assert [s for s, _, _ in back] == ["h.dlq"], "only the dead letters' first version"
    with pytest.raises(CompatibilityError, match="registered version 1, older than version 2"):
        plan_registration(topology_version(tmp_path, V1), history)


@pytest.mark.parametrize(("level", "ok"), [("BACKWARD_TRANSITIVE", False), ("NONE", True),
                                           ("forward_transitive", False), ("FULL", False)])
def test_doa_check_against_accepts_every_level(tmp_path: Path, level: str, ok: bool) -> None:
    from click.testing import CliRunner

    from doa.cli.app import cli

    for name, schema in (("v1", V1), ("v3", V3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "t.avsc").write_text(json.dumps(schema))
    result = CliRunner().invoke(cli, ["check", "--against", str(tmp_path / "v1" / "t.avsc"),
                                      str(tmp_path / "v3" / "t.avsc"), "--level", level])
    assert result.exit_code == (0 if ok else 1), result.output
    if ok:
        assert f"is {level.upper()}-compatible" in result.stdout
    else:
        assert result.stderr.startswith(f"incompatible ({level.upper()}): field 'T.n'")
