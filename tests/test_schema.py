"""Schemas: Parsing Canonical Form, CRC-64-AVRO fingerprints, named types across files.

References: the Apache ``avro`` library (canonical form, fingerprint, CRC-64-AVRO), the
published test vectors of apache/avro ``share/test/data/schema-tests.txt`` (validated there by
the Java implementation) and the Avro specification.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import avro.schema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doa.errors import SchemaError
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir, crc64_avro

REPO = Path(__file__).resolve().parent.parent
SCHEMA_DIR = REPO / "schemas"
ALL = sorted(SchemaSet.load(SCHEMA_DIR), key=lambda s: s.fullname)


def avro_parse(schema: Any) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema))


def signed(fp: bytes) -> int:
    """A fingerprint as the signed 64-bit number Java (and schema-tests.txt) print."""
    return int.from_bytes(fp, "little", signed=True)


def write(directory: Path, name: str, schema: Any) -> Path:
    path = directory / name
    path.write_text(json.dumps(schema))
    return path


# --- every schema of the repository against the avro library ---------------------------------


def test_every_schema_file_is_loaded() -> None:
    files = sorted(SCHEMA_DIR.glob("*.avsc")) + sorted(builtin_schema_dir().glob("*.avsc"))
    assert len(ALL) == len(files) >= 4
    assert {s.path for s in ALL} == set(files)
    assert {"sensors.reading", "sensors.alert", "sensors.Location", "doa.DeadLetter"} <= {
        s.fullname for s in ALL}


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.fullname)
def test_fingerprint_matches_avro(schema: Schema) -> None:
    expected = avro_parse(schema.json).fingerprint("CRC-64-AVRO")
    assert schema.fingerprint == expected
    assert len(schema.fingerprint) == 8


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.fullname)
def test_canonical_form_matches_avro(schema: Schema) -> None:
    assert schema.canonical == avro_parse(schema.json).canonical_form


@pytest.mark.parametrize("schema", ALL, ids=lambda s: s.fullname)
def test_reloading_the_canonical_form_is_a_fixed_point(schema: Schema) -> None:
    again = Schema.from_json(json.loads(schema.canonical))
    assert (again.canonical, again.fingerprint) == (schema.canonical, schema.fingerprint)


# --- apache/avro share/test/data/schema-tests.txt ---------------------------------------------

# (input, canonical form, fingerprint as a signed 64-bit number or None where the file has none)
APACHE_VECTORS: list[tuple[str, str, int | None]] = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"null"}', '"null"', None),
    ('"boolean"', '"boolean"', -6970731678124411036),
    ('{"type":"boolean"}', '"boolean"', None),
    ('"int"', '"int"', 8247732601305521295),
    ('{"type":"int"}', '"int"', None),
    ('"long"', '"long"', -3434872931120570953),
    ('{"type":"long"}', '"long"', None),
    ('"float"', '"float"', 5583340709985441680),
    ('{"type":"float"}', '"float"', None),
    ('"double"', '"double"', -8181574048448539266),
    ('{"type":"double"}', '"double"', None),
    ('"bytes"', '"bytes"', 5746618253357095269),
    ('{"type":"bytes"}', '"bytes"', None),
    ('"string"', '"string"', -8142146995180207161),
    ('{"type":"string"}', '"string"', None),
    ("[  ]", "[]", -1241056759729112623),
    ('[ "int"  ]', '["int"]', -5232228896498058493),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    ('{"fields":[], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
     '{"name":"x.y.foo","type":"record","fields":[]}', 5916914534497305771),
    ('{"fields":[], "type":"record", "name":"a.b.foo", "namespace":"x.y"}',
     '{"name":"a.b.foo","type":"record","fields":[]}', -4616218487480524110),
    ('{"fields":[], "type":"record", "name":"foo", "doc":"Useful info"}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[], "type":"record", "name":"foo", "aliases":["foo","bar"]}',
     '{"name":"foo","type":"record","fields":[]}', -4824392279771201922),
    ('{"fields":[{"type":{"type":"boolean"}, "name":"f1"}], "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}',
     7843277075252814651),
    # 026 has "default":"true", a string default for a boolean, which the spec does not allow
    # and fastavro refuses; defaults are stripped from the canonical form, so true will do.
    ('{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},'
     ' {"order":"descending","name":"f2","doc":"Hello","type":"int"}],'
     ' "type":"record", "name":"foo"}',
     '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},'
     '{"name":"f2","type":"int"}]}', -4860222112080293046),
    ('{"type":"enum", "name":"foo", "symbols":["A1"]}',
     '{"name":"foo","type":"enum","symbols":["A1"]}', -6342190197741309591),
    ('{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
     '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}', -4448647247586288245),
    ('{"name":"foo","type":"fixed","size":15}',
     '{"name":"foo","type":"fixed","size":15}', 1756455273707447556),
    ('{"namespace":"x.y.z", "type":"fixed", "name":"foo", "doc":"foo bar", "size":32}',
     '{"name":"x.y.z.foo","type":"fixed","size":32}', -3064184465700546786),
    ('{ "items":{"type":"null"}, "type":"array"}',
     '{"type":"array","items":"null"}', -589620603366471059),
    ('{ "values":"string", "type":"map"}',
     '{"type":"map","values":"string"}', -8732877298790414990),
    ('{"name":"PigValue","type":"record",'
     ' "fields":[{"name":"value", "type":["null", "int", "long", "PigValue"]}]}',
     '{"name":"PigValue","type":"record","fields":[{"name":"value",'
     '"type":["null","int","long","PigValue"]}]}', -1759257747318642341),
]


@pytest.mark.parametrize(("text", "canonical", "fingerprint"), APACHE_VECTORS)
def test_apache_schema_test_vectors(text: str, canonical: str, fingerprint: int | None) -> None:
    schema = Schema.from_json(json.loads(text))
    assert schema.canonical == canonical
    if fingerprint is not None:
        assert signed(schema.fingerprint) == fingerprint
    assert schema.fingerprint == avro.schema._crc_64_fingerprint(canonical.encode())


# --- logical types: the spec's Parsing Canonical Form, not the Python avro library's ----------

LOGICAL: list[tuple[str, dict[str, Any]]] = [
    ("long", {"logicalType": "timestamp-millis"}),
    ("long", {"logicalType": "timestamp-micros"}),
    ("long", {"logicalType": "local-timestamp-millis"}),
    ("int", {"logicalType": "date"}),
    ("int", {"logicalType": "time-millis"}),
    ("long", {"logicalType": "time-micros"}),
    ("string", {"logicalType": "uuid"}),
    ("bytes", {"logicalType": "decimal", "precision": 9, "scale": 2}),
]


@pytest.mark.parametrize(("primitive", "extra"), LOGICAL,
                         ids=[x["logicalType"] for _, x in LOGICAL])
def test_logical_type_on_a_primitive_has_the_specs_canonical_form(
    primitive: str, extra: dict[str, Any]
) -> None:
    # The spec's [STRIP] rule drops "logicalType" (and "precision", "scale"), and [PRIMITIVES]
    # then writes {"type":"long"} as "long"; Java's SchemaNormalization does exactly that. The
    # Python avro library (1.12) keeps {"type":"long"} in canonical_form when a logicalType was
    # present, which deviates from the spec and from Java, and so gives a different fingerprint.
    # So the reference here is avro's canonical form of the same schema with the logical type
    # stripped by hand.
    annotated = {"type": primitive, **extra}
    stripped = avro_parse({"type": primitive})
    schema = Schema.from_json(annotated)
    assert schema.canonical == stripped.canonical_form == json.dumps(primitive)
    assert schema.fingerprint == stripped.fingerprint("CRC-64-AVRO")

    record = {"type": "record", "name": "R", "namespace": "t", "fields": [
        {"name": "a", "type": annotated}, {"name": "b", "type": ["null", annotated]}]}
    plain = {**record, "fields": [{"name": "a", "type": primitive},
                                  {"name": "b", "type": ["null", primitive]}]}
    in_record = Schema.from_json(record)
    assert in_record.canonical == avro_parse(plain).canonical_form
    assert in_record.fingerprint == avro_parse(plain).fingerprint("CRC-64-AVRO")


# --- CRC-64-AVRO -------------------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b'"int"', b'"null"', b'"string"', b"\x00", b"\xff" * 64,
                                  "é€𝄞".encode()])
def test_crc64_avro_matches_avro(data: bytes) -> None:
    assert crc64_avro(data) == avro.schema._crc_64_fingerprint(data)


def test_crc64_avro_of_int_is_the_published_value() -> None:
    # apache/avro schema-tests.txt 004, and the single-object header of "int" in the Ruby tests:
    # C3 01 8F 5C 39 3F 1A D5 75 72.
    assert signed(crc64_avro(b'"int"')) == 8247732601305521295
    assert crc64_avro(b'"int"') == bytes.fromhex("8f5c393f1ad57572")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_crc64_avro_matches_avro_on_any_bytes(data: bytes) -> None:
    assert crc64_avro(data) == avro.schema._crc_64_fingerprint(data)


# --- named types across files ------------------------------------------------------------------


def test_reading_uses_location_from_another_file(repo_schemas: SchemaSet) -> None:
    reading, location = repo_schemas["sensors.reading"], repo_schemas["sensors.Location"]
    assert "sensors.Location" not in (SCHEMA_DIR / "reading.avsc").read_text().split('"name"')[1]
    inlined = reading.json["fields"][3]["type"]
    assert inlined["name"] == "Location" and inlined["namespace"] == "sensors"
    assert [f["name"] for f in inlined["fields"]] == ["lat", "lon"]
    assert location.canonical in reading.canonical
    # and avro itself agrees the inlined schema is the reading with its Location
    parsed = avro_parse(reading.json)
    assert isinstance(parsed, avro.schema.RecordSchema)
    assert parsed.fields_dict["location"].type.fullname == "sensors.Location"


def test_lookup_by_full_name_short_name_and_file_stem(repo_schemas: SchemaSet) -> None:
    reading = repo_schemas["sensors.reading"]
    assert repo_schemas["reading"] is reading and repo_schemas.get("reading") is reading
    assert repo_schemas["location"] is repo_schemas["Location"] is repo_schemas["sensors.Location"]
    assert repo_schemas["dead_letter"].fullname == "doa.DeadLetter"
    assert repo_schemas.by_fingerprint[reading.fingerprint] is reading
    assert "reading" in repo_schemas and "nope" not in repo_schemas
    with pytest.raises(SchemaError, match=r"no schema named 'nope' .*sensors\.reading"):
        repo_schemas["nope"]


def test_unknown_reference_names_the_file_and_the_type(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.avsc", {"type": "record", "name": "Bad", "namespace": "x",
                                       "fields": [{"name": "where", "type": "x.Nowhere"}]})
    with pytest.raises(SchemaError) as info:
        SchemaSet.load(tmp_path)
    assert str(bad) in str(info.value)
    assert "x.Nowhere" in str(info.value)


@pytest.mark.parametrize("position", [
    {"type": "array", "items": "Missing"},
    {"type": "map", "values": "Missing"},
    ["null", "Missing"],
])
def test_unknown_reference_inside_containers(tmp_path: Path, position: Any) -> None:
    bad = write(tmp_path, "deep.avsc", {"type": "record", "name": "Deep",
                                        "fields": [{"name": "f", "type": position}]})
    with pytest.raises(SchemaError, match="Missing") as info:
        SchemaSet.load(tmp_path, builtin=False)
    assert str(bad) in str(info.value)


def test_type_from_another_file_used_twice(tmp_path: Path) -> None:
    write(tmp_path, "point.avsc", {"type": "record", "name": "Point", "namespace": "geo",
                                   "fields": [{"name": "x", "type": "double"}]})
    write(tmp_path, "segment.avsc", {"type": "record", "name": "Segment", "namespace": "geo",
                                     "fields": [{"name": "a", "type": "Point"},
                                                {"name": "b", "type": "geo.Point"}]})
    segment = SchemaSet.load(tmp_path, builtin=False)["geo.Segment"]
    assert segment.json["fields"][0]["type"]["name"] == "Point"
    assert segment.json["fields"][1]["type"] == "geo.Point"  # defined once, then referenced
    parsed = avro_parse(segment.json)
    assert segment.canonical == parsed.canonical_form
    assert segment.fingerprint == parsed.fingerprint("CRC-64-AVRO")
    assert segment.canonical == (
        '{"name":"geo.Segment","type":"record","fields":[{"name":"a","type":{"name":"geo.Point",'
        '"type":"record","fields":[{"name":"x","type":"double"}]}},{"name":"b","type":"geo.Point"}'
        "]}")


def test_type_without_namespace_keeps_its_name_where_it_is_used(tmp_path: Path) -> None:
    # Loading a record with no namespace used to crash with KeyError('namespace').
    write(tmp_path, "point.avsc", {"type": "record", "name": "Point",
                                   "fields": [{"name": "x", "type": "int"}]})
    write(tmp_path, "b.avsc", {"type": "record", "name": "B", "namespace": "geo",
                               "fields": [{"name": "p", "type": "Point"}]})
    loaded = SchemaSet.load(tmp_path, builtin=False)
    assert loaded["Point"].canonical == avro_parse(loaded["Point"].json).canonical_form
    # Point is in the null namespace (the spec's fallback, as in Java's parser); inlined into
    # geo.B it must stay "Point", not become geo.Point. The expected form is the spec's
    # [FULLNAMES] rule applied by hand. (The Python avro library reads "namespace": "" as
    # "inherit", against the spec, so it is not the reference here.)
    expected = ('{"name":"geo.B","type":"record","fields":[{"name":"p","type":{"name":"Point",'
                '"type":"record","fields":[{"name":"x","type":"int"}]}}]}')
    assert loaded["geo.B"].canonical == expected
    assert loaded["geo.B"].fingerprint == avro.schema._crc_64_fingerprint(expected.encode())


def test_conflicting_definitions_are_refused(tmp_path: Path) -> None:
    write(tmp_path, "a.avsc", {"type": "record", "name": "P", "namespace": "n",
                               "fields": [{"name": "x", "type": "int"}]})
    write(tmp_path, "b.avsc", {"type": "record", "name": "P", "namespace": "n",
                               "fields": [{"name": "x", "type": "string"}]})
    with pytest.raises(SchemaError, match=r"'n\.P'.*a\.avsc.*b\.avsc"):
        SchemaSet.load(tmp_path, builtin=False)


def test_same_definition_twice_differing_only_in_docs_is_fine(tmp_path: Path) -> None:
    for name, doc in (("a.avsc", "one"), ("b.avsc", "two")):
        write(tmp_path, name, {"type": "record", "name": "P", "namespace": "n", "doc": doc,
                               "fields": [{"name": "x", "type": "int"}]})
    assert SchemaSet.load(tmp_path, builtin=False)["n.P"].fullname == "n.P"


def test_from_file_resolves_against_known_schemas(repo_schemas: SchemaSet, tmp_path: Path) -> None:
    path = write(tmp_path, "visit.avsc", {"type": "record", "name": "visit", "namespace": "x",
                                          "fields": [{"name": "at", "type": "sensors.Location"}]})
    visit = Schema.from_file(path, repo_schemas)
    assert visit.path == path and visit.fullname == "x.visit"
    assert visit.canonical == avro_parse(visit.json).canonical_form
    with pytest.raises(SchemaError, match=r"sensors\.Location"):
        Schema.from_file(path)


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"type": "record", "name": "R", "fields": [{"name": "x", "type": "integer"}]}', "integer"),
    ('{"type": "enum", "name": "E", "symbols": ["A", "A"]}', "invalid Avro schema"),
])
def test_bad_schema_files_name_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "broken.avsc"
    path.write_text(content)
    with pytest.raises(SchemaError, match=message) as info:
        SchemaSet.load(tmp_path, builtin=False)
    assert str(path) in str(info.value)


def test_missing_directory_and_file(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="does not exist"):
        SchemaSet.load(tmp_path / "nope")
    with pytest.raises(SchemaError, match="not found"):
        Schema.from_file(tmp_path / "nope.avsc")
