"""Schema evolution checks, as Confluent Schema Registry levels them.

BACKWARD: the new schema reads data written with the old one. FORWARD: the old schema reads
data written with the new one. FULL: both. References: avro's own
``ReaderWriterCompatibilityChecker`` for the verdict, and avro's ``DatumReader`` resolving real
data for every change called compatible.
"""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import avro.io
import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from doa.compat import LEVELS, check_compatible, incompatibilities
from doa.errors import CompatibilityError

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
