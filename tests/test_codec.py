"""The codec: single-object encoding checked against the Apache avro library, validation errors,
decoding errors, schema evolution.

Records come from generators written here from the schema JSON (a deterministic one and a
hypothesis strategy), with their own name resolution, independent of doa's.
"""

from __future__ import annotations

import copy
import datetime
import io
import json
import math
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from doa.errors import MISSING, DecodeError, EncodeError
from doa.wire.codec import HEADER_SIZE, MARKER, Codec
from doa.wire.schema import Schema, SchemaSet

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = {s.fullname: s for s in SchemaSet.load(REPO / "schemas")}
PROPERTY = settings(max_examples=120, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Everything the Avro spec has, named types referenced by short and full name, across two
# namespaces, and a recursive type.
SINK_JSON: dict[str, Any] = {
    "type": "record", "name": "Sink", "namespace": "test.sink", "fields": [
        {"name": "f_null", "type": "null"},
        {"name": "f_boolean", "type": "boolean"},
        {"name": "f_int", "type": "int"},
        {"name": "f_long", "type": "long"},
        {"name": "f_float", "type": "float"},
        {"name": "f_double", "type": "double"},
        {"name": "f_bytes", "type": "bytes"},
        {"name": "f_string", "type": "string"},
        {"name": "f_enum", "type": {"type": "enum", "name": "Color",
                                    "symbols": ["RED", "GREEN", "BLUE"]}},
        {"name": "f_fixed", "type": {"type": "fixed", "name": "Hash", "size": 4}},
        {"name": "f_record", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "i_int", "type": "int"},
            {"name": "i_deeper", "type": {
                "type": "record", "name": "Deeper", "namespace": "test.other", "fields": [
                    {"name": "d_float", "type": "float"},
                    {"name": "d_color", "type": "test.sink.Color"}]}}]}},
        {"name": "f_inner_again", "type": "Inner"},
        {"name": "f_deeper_again", "type": "test.other.Deeper"},
        {"name": "f_array", "type": {"type": "array", "items": "long"}},
        {"name": "f_array_records", "type": {"type": "array", "items": "test.sink.Inner"}},
        {"name": "f_map", "type": {"type": "map", "values": "double"}},
        {"name": "f_map_arrays", "type": {"type": "map",
                                          "values": {"type": "array", "items": "boolean"}}},
        {"name": "f_optional", "type": ["null", "string"], "default": None},
        {"name": "f_optional_record", "type": ["null", "Inner"]},
        {"name": "f_optional_int", "type": ["null", "int"]},
        # (a fixed is referenced by name nowhere: the Python avro library's canonical form
        # inlines a fixed again at every use, see test_schema.py)
        {"name": "f_union", "type": ["int", "string", "Color", "null", "double",
                                     {"type": "fixed", "name": "Pair", "size": 2}]},
        {"name": "f_nested_array", "type": {"type": "array",
                                            "items": {"type": "array", "items": "int"}}},
        {"name": "f_tree", "type": {"type": "record", "name": "Tree", "fields": [
            {"name": "label", "type": "string"},
            {"name": "children", "type": {"type": "array", "items": "Tree"}}]}},
        {"name": "f_wrapped", "type": {"type": "int"}},
    ]}
SINK = Schema.from_json(SINK_JSON)
ALL = {**SCHEMAS, SINK.fullname: SINK}
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


# --- our own reading of Avro names ------------------------------------------------------------


class Names:
    """Named types of a schema by full name, with the namespace each encloses (Avro spec)."""

    def __init__(self, schema: Any) -> None:
        self.defs: dict[str, tuple[dict[str, Any], str]] = {}
        self._walk(schema, "")

    @staticmethod
    def full(node: dict[str, Any], ns: str) -> tuple[str, str]:
        name = node["name"]
        if "." in name:
            return name, name.rsplit(".", 1)[0]
        space = node.get("namespace", ns) or ""
        return (f"{space}.{name}" if space else name), space

    def _walk(self, node: Any, ns: str) -> None:
        if isinstance(node, list):
            for x in node:
                self._walk(x, ns)
        elif isinstance(node, dict):
            if node.get("type") in ("record", "enum", "fixed"):
                full, ns = self.full(node, ns)
                self.defs[full] = (node, ns)
            for f in node.get("fields", []):
                self._walk(f["type"], ns)
            for key in ("items", "values"):
                if key in node:
                    self._walk(node[key], ns)
            if isinstance(node.get("type"), (dict, list)):
                self._walk(node["type"], ns)

    def resolve(self, name: str, ns: str) -> tuple[str, dict[str, Any], str]:
        full = name if "." in name or not ns else f"{ns}.{name}"
        node, space = self.defs[full]
        return full, node, space


def node_of(schema: Any, names: Names, ns: str) -> tuple[Any, str]:
    """Resolve references and ``{"type": X}`` wrappers; the node and its namespace."""
    while True:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            _, schema, ns = names.resolve(schema, ns)
            continue
        if isinstance(schema, dict) and schema["type"] in ("record", "enum", "fixed"):
            return schema, names.full(schema, ns)[1]
        if isinstance(schema, dict) and schema["type"] not in ("array", "map"):
            schema = schema["type"]
            continue
        return schema, ns


# --- a deterministic example and a hypothesis strategy, from the schema JSON -------------------


def example(schema: Any, names: Names, ns: str, rng: random.Random, depth: int = 0) -> Any:
    schema, ns = node_of(schema, names, ns)
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"] if depth < 3 else ["null"]
        return example(rng.choice(branches or ["null"]), names, ns, rng, depth + 1)
    if isinstance(schema, str):
        return {
            "null": None, "boolean": rng.random() < 0.5,
            "int": rng.randint(-(2**31), 2**31 - 1), "long": rng.randint(-(2**63), 2**63 - 1),
            "float": 0.5 * rng.randint(-100, 100), "double": rng.uniform(-1e9, 1e9),
            "bytes": rng.randbytes(rng.randint(0, 8)),
            "string": "".join(rng.choice("aé€𝄞z ") for _ in range(rng.randint(0, 8))),
        }[schema]
    kind = schema["type"]
    n = rng.randint(1, 3) if depth < 3 else 0
    if kind == "record":
        return {f["name"]: example(f["type"], names, ns, rng, depth + 1)
                for f in schema["fields"]}
    if kind == "enum":
        return rng.choice(schema["symbols"])
    if kind == "fixed":
        return rng.randbytes(schema["size"])
    if kind == "array":
        return [example(schema["items"], names, ns, rng, depth + 1) for _ in range(n)]
    return {f"k{i}": example(schema["values"], names, ns, rng, depth + 1) for i in range(n)}


PRIMITIVE_STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    # float32-representable, so they come back exactly; NaN is never equal to itself
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=16),
    "string": st.text(max_size=16),
}


def strategy(schema: Any, names: Names | None = None, ns: str = "",
             cache: dict[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[Any]:
    """Valid values of ``schema``: records, arrays, maps, unions, enums, fixed, primitives."""
    names = Names(schema) if names is None else names
    cache = {} if cache is None else cache
    if isinstance(schema, list):
        return st.one_of([strategy(b, names, ns, cache) for b in schema])
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return PRIMITIVE_STRATEGIES[schema]
        full, node, space = names.resolve(schema, ns)
        return cache[full] if full in cache else strategy(node, names, space, cache)
    kind = schema["type"]
    if kind in ("record", "enum", "fixed"):
        full, inner = names.full(schema, ns)
        if full in cache:
            return cache[full]
        # deferred, so a recursive type can refer to itself
        cache[full] = st.deferred(lambda: _named(schema, names, inner, cache))
        return cache[full]
    if kind == "array":
        return st.lists(strategy(schema["items"], names, ns, cache), max_size=3)
    if kind == "map":
        return st.dictionaries(st.text(max_size=4), strategy(schema["values"], names, ns, cache),
                               max_size=3)
    return strategy(kind, names, ns, cache)


def _named(schema: dict[str, Any], names: Names, ns: str,
           cache: dict[str, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    if schema["type"] == "enum":
        return st.sampled_from(schema["symbols"])
    if schema["type"] == "fixed":
        return st.binary(min_size=schema["size"], max_size=schema["size"])
    return st.fixed_dictionaries({f["name"]: strategy(f["type"], names, ns, cache)
                                  for f in schema["fields"]})


STRATEGIES = {name: strategy(s.json) for name, s in ALL.items()}


# --- the Apache avro library as the reference --------------------------------------------------


_AVRO_SCHEMAS: dict[tuple[str, bytes], avro.schema.Schema] = {}
_CODECS: dict[tuple[str, str, bytes], Codec] = {}


def avro_schema(schema: Schema) -> avro.schema.Schema:
    """The Apache Avro library's parse of ``schema`` (kept: the property tests ask per example)."""
    key = (schema.fullname, schema.fingerprint)
    if key not in _AVRO_SCHEMAS:
        _AVRO_SCHEMAS[key] = avro.schema.parse(json.dumps(schema.json))
    return _AVRO_SCHEMAS[key]


def codec_for(stream: str, schema: Schema) -> Codec:
    """One Codec per stream and schema: the property tests' examples share it (a Codec holds
    no state a decode or encode changes; building one compiles its code, ~30 ms)."""
    key = (stream, schema.fullname, schema.fingerprint)
    if key not in _CODECS:
        _CODECS[key] = Codec(stream, schema)
    return _CODECS[key]


def avro_decode(body: bytes, writer: Schema, reader: Schema | None = None) -> Any:
    buf = io.BytesIO(body)
    datum_reader = avro.io.DatumReader(avro_schema(writer),
                                       avro_schema(reader) if reader else None)
    value = datum_reader.read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(body), "avro did not read the whole body"
    return value


def avro_encode(schema: Schema, record: Any) -> bytes:
    buf = io.BytesIO()
    avro.io.DatumWriter(avro_schema(schema)).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ALL))
def test_round_trip_of_an_example_record(name: str) -> None:
    schema = ALL[name]
    rng = random.Random(name)
    codec = Codec("s", schema)
    for _ in range(20):
        record = example(schema.json, Names(schema.json), "", rng)
        data = codec.encode(record)
        assert codec.decode(data) == record
        assert avro_decode(data[HEADER_SIZE:], schema) == record


@pytest.mark.parametrize("name", sorted(ALL))
@PROPERTY
@given(data=st.data())
def test_generated_records_round_trip_and_avro_reads_them(name: str, data: st.DataObject
                                                          ) -> None:
    schema = ALL[name]
    record = data.draw(STRATEGIES[name])
    codec = codec_for("s", schema)
    payload = codec.encode(record)
    # header: the marker C3 01, then the CRC-64-AVRO fingerprint (little-endian) as avro has it
    assert payload[:2] == b"\xc3\x01" == MARKER
    assert payload[2:HEADER_SIZE] == avro_schema(schema).fingerprint("CRC-64-AVRO")
    assert codec.decode(payload) == record
    assert avro_decode(payload[HEADER_SIZE:], schema) == record
    # and what avro writes decodes with the codec (the bytes may differ: where a value fits
    # several branches of a union, as 0 fits int and double, writers may pick either)
    # (Python avro writes an int in a ["long", "double"] union as a double: beyond 2**53 the
    # value then rounds, so compare as that writer's branch choice allows.)
    body = avro_encode(schema, record)
    assert _as_doubles(codec.decode(MARKER + schema.fingerprint + body)) == _as_doubles(record)


def _as_doubles(value: object) -> object:
    if isinstance(value, dict):
        return {k: _as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_doubles(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return float(value)
    return value


def test_special_floats_round_trip() -> None:
    codec = Codec("sink", SINK)
    record = example(SINK_JSON, Names(SINK_JSON), "", random.Random(1))
    for value in (math.inf, -math.inf, -0.0, 2.0**-149, 3.4028234663852886e38):
        out = codec.decode(codec.encode({**record, "f_float": value, "f_double": value}))
        assert out["f_float"] == value and out["f_double"] == value
    out = codec.decode(codec.encode({**record, "f_double": math.nan}))
    assert math.isnan(out["f_double"])


def test_missing_field_with_default_is_written_with_the_default() -> None:
    codec = Codec("sink", SINK)
    record = example(SINK_JSON, Names(SINK_JSON), "", random.Random(2))
    del record["f_optional"]
    assert codec.decode(codec.encode(record)) == {**record, "f_optional": None}


# --- invalid records ---------------------------------------------------------------------------

READING = {"sensor_id": "s1", "ts": 1_700_000_000_000, "value": 21.5,
           "location": {"lat": 52.1, "lon": 4.3}, "unit": "C"}
DEAD = {"stream": "readings", "partition": 0, "offset": 7, "node": "n", "error_type": "E",
        "message": "m", "key": None, "raw": b"\x00", "timestamp": 1, "record_timestamp": 2}


def _with(record: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(record)
    *parents, last = path.split(".")
    node = out
    for p in parents:
        node = node[p]
    if value is MISSING:
        del node[last]
    else:
        node[last] = value
    return out


INVALID = [
    # (stream, schema, valid record, field to change, bad value, path, expected)
    ("missing field", "sensors.reading", READING, "ts", MISSING, "reading.ts", "long"),
    ("wrong type", "sensors.reading", READING, "ts", "soon", "reading.ts", "long"),
    ("nested wrong type", "sensors.reading", READING, "location.lat", "north",
     "reading.location.lat", "double"),
    ("nested missing", "sensors.reading", READING, "location.lon", MISSING,
     "reading.location.lon", "double"),
    ("null in non-null", "sensors.reading", READING, "sensor_id", None,
     "reading.sensor_id", "string"),
    ("null in nested non-null", "sensors.reading", READING, "location.lat", None,
     "reading.location.lat", "double"),
    ("record is not a dict", "sensors.reading", READING, "location", [52.1, 4.3],
     "reading.location", "record Location"),
    ("bytes for string", "sensors.reading", READING, "sensor_id", b"s1",
     "reading.sensor_id", "string"),
    ("bytes in an optional string", "sensors.reading", READING, "unit", b"C",
     "reading.unit", "one of [null, string]"),
    ("string for bytes", "doa.DeadLetter", DEAD, "raw", "text", "DeadLetter.raw", "bytes"),
    ("string in optional bytes", "doa.DeadLetter", DEAD, "key", "k", "DeadLetter.key",
     "one of [null, bytes]"),
    ("float in int", "doa.DeadLetter", DEAD, "partition", 1.5, "DeadLetter.partition", "int"),
    ("integral float in long", "sensors.reading", READING, "ts", 1.0, "reading.ts", "long"),
    ("bool in int", "doa.DeadLetter", DEAD, "partition", True, "DeadLetter.partition", "int"),
    ("bool in long", "sensors.reading", READING, "ts", False, "reading.ts", "long"),
    ("bool in double", "sensors.reading", READING, "value", True, "reading.value", "double"),
    ("string in double", "sensors.reading", READING, "value", "21.5", "reading.value", "double"),
    ("int above range", "doa.DeadLetter", DEAD, "partition", 2**31, "DeadLetter.partition",
     "int"),
    ("int below range", "doa.DeadLetter", DEAD, "partition", -(2**31) - 1,
     "DeadLetter.partition", "int"),
    ("long above range", "sensors.reading", READING, "ts", 2**63, "reading.ts", "long"),
    ("int too big for a double", "sensors.reading", READING, "value", 2**1024, "reading.value",
     "double"),
    ("unknown extra field", "sensors.reading", READING, "colour", "red", "reading.colour",
     "no such field (record reading has: location, sensor_id, ts, unit, value)"),
    ("unknown nested field", "sensors.reading", READING, "location.alt", 3.0,
     "reading.location.alt", "no such field (record Location has: lat, lon)"),
]


@pytest.mark.parametrize(("case", "name", "record", "field", "value", "path", "expected"),
                         INVALID, ids=[c[0] for c in INVALID])
def test_invalid_record_names_path_expected_and_value(
    case: str, name: str, record: dict[str, Any], field: str, value: Any, path: str,
    expected: str,
) -> None:
    codec = Codec("readings", SCHEMAS[name])
    codec.encode(record)  # the unchanged record is fine
    bad = _with(record, field, value)
    with pytest.raises(EncodeError) as info:
        codec.encode(bad)
    error = info.value
    assert (error.path, error.expected) == (path, expected)
    assert error.value is value
    assert error.stream == "readings"
    if expected.startswith("no such field"):  # not "expected no such field"
        assert str(error).startswith(f"stream 'readings': field {path} is not in the schema "
                                     f"{expected.removeprefix('no such field ')}, got "), error
    else:
        assert str(error).startswith(f"stream 'readings': field {path} expected "), error


SINK_INVALID = [
    ("bad enum symbol", "f_enum", "PURPLE", "Sink.f_enum",
     "one of the symbols ['RED', 'GREEN', 'BLUE']"),
    ("enum symbol of the wrong type", "f_enum", 0, "Sink.f_enum",
     "one of the symbols ['RED', 'GREEN', 'BLUE']"),
    ("fixed of the wrong size", "f_fixed", b"abc", "Sink.f_fixed", "fixed Hash of 4 bytes"),
    ("not null in a null field", "f_null", 0, "Sink.f_null", "null"),
    ("int in a boolean", "f_boolean", 1, "Sink.f_boolean", "boolean"),
    ("float in an optional int", "f_optional_int", 2.5, "Sink.f_optional_int",
     "one of [null, int]"),
    ("bool in an optional int", "f_optional_int", True, "Sink.f_optional_int",
     "one of [null, int]"),
    ("value in no branch of a union", "f_union", [1], "Sink.f_union",
     "one of [int, string, Color, null, double, Pair]"),
    ("union branch given in fastavro's tuple notation", "f_union", ("int", 1.5), "Sink.f_union",
     "one of [int, string, Color, null, double, Pair]"),
    ("array is not a list", "f_array", "123", "Sink.f_array", "array of long"),
    ("map is not a dict", "f_map", [("a", 1.0)], "Sink.f_map", "map of double"),
]


@pytest.mark.parametrize(("case", "field", "value", "path", "expected"), SINK_INVALID,
                         ids=[c[0] for c in SINK_INVALID])
def test_invalid_values_of_every_kind(case: str, field: str, value: Any, path: str,
                                      expected: str) -> None:
    codec = Codec("sink", SINK)
    record = example(SINK_JSON, Names(SINK_JSON), "", random.Random(3))
    with pytest.raises(EncodeError) as info:
        codec.encode({**record, field: value})
    assert (info.value.path, info.value.expected) == (path, expected)
    assert info.value.value is value
    assert f"stream 'sink': field {path} expected" in str(info.value)


@pytest.mark.parametrize(("where", "path", "expected"), [
    (lambda r: r["f_array"].__setitem__(1, "x"), "Sink.f_array[1]", "long"),
    (lambda r: r["f_array"].__setitem__(0, 1.5), "Sink.f_array[0]", "long"),
    (lambda r: r["f_nested_array"][1].__setitem__(0, True), "Sink.f_nested_array[1][0]", "int"),
    (lambda r: r["f_array_records"][1].__setitem__("i_int", 1.5),
     "Sink.f_array_records[1].i_int", "int"),
    (lambda r: r["f_map"].__setitem__("k0", "x"), "Sink.f_map['k0']", "double"),
    (lambda r: r["f_map"].__setitem__(5, 1.0), "Sink.f_map[5]", "string key"),
    (lambda r: r["f_map_arrays"]["k0"].__setitem__(0, 0), "Sink.f_map_arrays['k0'][0]",
     "boolean"),
    (lambda r: r["f_record"]["i_deeper"].__setitem__("d_float", "x"),
     "Sink.f_record.i_deeper.d_float", "float"),
    (lambda r: r["f_record"]["i_deeper"].__setitem__("d_color", "PINK"),
     "Sink.f_record.i_deeper.d_color", "one of the symbols ['RED', 'GREEN', 'BLUE']"),
    (lambda r: r["f_inner_again"].__setitem__("i_int", 1.5), "Sink.f_inner_again.i_int", "int"),
    (lambda r: r["f_deeper_again"].__setitem__("d_float", True), "Sink.f_deeper_again.d_float",
     "float"),
    (lambda r: r.__setitem__("f_optional_record", {"i_int": 2**40, "i_deeper": {
        "d_float": 1.0, "d_color": "RED"}}), "Sink.f_optional_record.i_int", "int"),
    (lambda r: r["f_tree"]["children"][0].__setitem__("label", 7),
     "Sink.f_tree.children[0].label", "string"),
    (lambda r: r["f_tree"]["children"][0]["children"].append({"label": "x", "children": [1.5]}),
     "Sink.f_tree.children[0].children[1].children[0]", "record Tree"),
])
def test_wrong_element_deep_inside(where: Any, path: str, expected: str) -> None:
    codec = Codec("sink", SINK)
    record = example(SINK_JSON, Names(SINK_JSON), "", random.Random(4))
    record["f_array"] = [1, 2, 3]
    record["f_nested_array"] = [[1], [2, 3]]
    record["f_map"] = {"k0": 1.0}
    record["f_map_arrays"] = {"k0": [True]}
    inner = {"i_int": 1, "i_deeper": {"d_float": 1.0, "d_color": "RED"}}
    record["f_array_records"] = [copy.deepcopy(inner), copy.deepcopy(inner)]
    record["f_tree"] = {"label": "a", "children": [
        {"label": "b", "children": [{"label": "c", "children": []}]}]}
    codec.encode(record)
    where(record)
    with pytest.raises(EncodeError) as info:
        codec.encode(record)
    assert (info.value.path, info.value.expected) == (path, expected)


LOGICAL_JSON: dict[str, Any] = {"type": "record", "name": "Times", "fields": [
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "maybe", "type": ["null", {"type": "long", "logicalType": "timestamp-micros"}]},
]}


def test_logical_types_take_their_python_type_or_the_underlying_one() -> None:
    codec = Codec("times", Schema.from_json(LOGICAL_JSON))
    utc = datetime.timezone.utc
    record = {"at": datetime.datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=utc),
              "day": datetime.date(2024, 5, 1),
              "maybe": datetime.datetime(2024, 5, 1, 0, 0, 0, 1, tzinfo=utc)}
    payload = codec.encode(record)
    assert codec.decode(payload) == record
    assert avro_decode(payload[HEADER_SIZE:], Schema.from_json(LOGICAL_JSON)) == record
    raw = codec.decode(codec.encode({"at": 1_000, "day": 1, "maybe": None}))
    assert raw == {"at": datetime.datetime(1970, 1, 1, 0, 0, 1, tzinfo=utc),
                   "day": datetime.date(1970, 1, 2), "maybe": None}
    # a float or a bool is not a number of milliseconds or days: fastavro would write 1.5 and
    # True as 1
    for field, value, expected in [("at", 1.5, "long"), ("at", True, "long"),
                                   ("day", 2.5, "int"), ("maybe", 1.5, "one of [null, long]")]:
        with pytest.raises(EncodeError) as info:
            codec.encode({**record, field: value})
        assert (info.value.path, info.value.expected, info.value.value) == (
            f"Times.{field}", expected, value)


def test_named_type_defined_where_the_record_has_no_value() -> None:
    # Q is defined inside an empty array and P in an unused union branch; a later field that
    # references them must still be checked and explained.
    schema = Schema.from_json({"type": "record", "name": "R", "fields": [
        {"name": "o", "type": ["null", {"type": "record", "name": "P",
                                        "fields": [{"name": "a", "type": "int"}]}]},
        {"name": "arr", "type": {"type": "array", "items": {
            "type": "record", "name": "Q", "fields": [{"name": "s", "type": "string"}]}}},
        {"name": "p", "type": "P"}, {"name": "q", "type": "Q"}]})
    codec = Codec("x", schema)
    good: dict[str, Any] = {"o": None, "arr": [], "p": {"a": 1}, "q": {"s": "x"}}
    assert codec.decode(codec.encode(good)) == good
    for field, value, path, expected in [("p", {"a": 1.5}, "R.p.a", "int"),
                                         ("p", {"a": "1"}, "R.p.a", "int"),
                                         ("q", {"s": 3}, "R.q.s", "string")]:
        with pytest.raises(EncodeError) as info:
            codec.encode({**good, field: value})
        assert (info.value.path, info.value.expected) == (path, expected)


# --- validation against avro.io.validate ----------------------------------------------------

# No bools: Python's avro accepts True for int, long, float and double (bool subclasses int);
# doa refuses them, as Java's avro does. No empty dicts: avro reads a missing field as None,
# doa requires every field without a default. Digit keys are never Avro field names.
JUNK = st.one_of(
    st.none(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=3),
    st.binary(max_size=5), st.lists(st.integers(-(2**40), 2**40), max_size=2),
    st.dictionaries(st.text("0123456789", min_size=1, max_size=2), st.integers(), min_size=1,
                    max_size=2),
)


def positions(schema: Any, value: Any, names: Names, ns: str, keys: tuple[Any, ...], path: str
              ) -> Iterator[tuple[tuple[Any, ...], str]]:
    """Every place inside ``value`` (not through unions), as keys and as doa prints its path."""
    schema, ns = node_of(schema, names, ns)
    if not isinstance(schema, dict):
        return
    if schema["type"] == "record":
        for f in schema["fields"]:
            here = (*keys, f["name"]), f"{path}.{f['name']}"
            yield here
            yield from positions(f["type"], value[f["name"]], names, ns, *here)
    elif schema["type"] == "array":
        for i, item in enumerate(value):
            yield (*keys, i), f"{path}[{i}]"
            yield from positions(schema["items"], item, names, ns, (*keys, i), f"{path}[{i}]")
    elif schema["type"] == "map":
        for k, item in value.items():
            yield (*keys, k), f"{path}[{k!r}]"
            yield from positions(schema["values"], item, names, ns, (*keys, k), f"{path}[{k!r}]")


def _related(a: str, b: str) -> bool:
    def within(inner: str, outer: str) -> bool:
        return inner == outer or inner.startswith((f"{outer}.", f"{outer}["))
    return within(a, b) or within(b, a)


@pytest.mark.parametrize("name", sorted(ALL))
@PROPERTY
@given(data=st.data())
def test_accepts_exactly_what_avro_validates(name: str, data: st.DataObject) -> None:
    schema = ALL[name]
    record = data.draw(STRATEGIES[name])
    places = list(positions(schema.json, record, Names(schema.json), "", (), schema.name))
    keys, path = data.draw(st.sampled_from(places))
    junk = data.draw(JUNK)
    node = record
    for k in keys[:-1]:
        node = node[k]
    node[keys[-1]] = junk
    valid = avro.io.validate(avro_schema(schema), record)
    try:
        payload = codec_for("s", schema).encode(record)
    except EncodeError as error:
        assert not valid, f"refused a record avro validates: {error}"
        # the error is where the junk went, around it (a union) or inside it (junk dicts)
        assert _related(path, error.path), (path, error.path)
        if path == error.path:
            assert error.value is junk
    else:
        assert valid, f"accepted a record avro refuses: {path} = {junk!r}"
        assert avro_decode(payload[HEADER_SIZE:], schema) is not None


# --- decoding errors ---------------------------------------------------------------------------


@pytest.fixture
def readings() -> Codec:
    return Codec("readings", SCHEMAS["sensors.reading"])


@pytest.mark.parametrize("data", [b"\x00\x01" + bytes(8) + b"\x02", b"\xc3\x02" + bytes(20),
                                  b'{"sensor_id": "s1"}', b"\x01", b"\xc4"])
def test_bad_marker(readings: Codec, data: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        readings.decode(data)
    assert info.value.reason == "bad-marker"
    assert info.value.stream == "readings"
    assert "stream 'readings'" in str(info.value)


@pytest.mark.parametrize(("data", "said"), [
    (b'{"sensor_id": "s1", "value": 2.5}', "it is JSON text, not Avro"),
    (b'[{"sensor_id": "s1"}]', "it is JSON text, not Avro"),
    (b"s1,2.5,1700000000", "it is text, not Avro"),
    (b"\x00\x00\x00\x00\x07\x04s1\x00\x00\x00\x00\x04@", None),  # binary: nothing to say about it
])
def test_bad_marker_says_when_the_bytes_are_text(readings: Codec, data: bytes,
                                                 said: str | None) -> None:
    """Records a non-doa producer wrote (kafka-console-producer, a JSON client) are named as
    such, and the fix said (a walk had only "starts with '7b22'")."""
    with pytest.raises(DecodeError) as info:
        readings.decode(data)
    message = str(info.value)
    if said is None:
        assert message.endswith("expected 'c301'"), message
    else:
        assert f"expected 'c301'; {said}: written by a producer that is not doa's " \
               f"(publish with `doa publish` or doa's Publisher)" in message, message


def test_unknown_fingerprint(readings: Codec) -> None:
    payload = readings.encode(READING)
    with pytest.raises(DecodeError) as info:
        readings.decode(MARKER + bytes(8) + payload[HEADER_SIZE:])
    assert info.value.reason == "unknown-fingerprint"
    assert str(info.value).endswith("fingerprint 0000000000000000 is not a version of "
                                    "sensors.reading registered on the broker when this "
                                    "process last read the registry (written with a schema "
                                    "never deployed? `doa deploy` registers a topology's "
                                    "schemas)")
    alert = Codec("alerts", SCHEMAS["sensors.alert"]).encode({
        "sensor_id": "s", "ts": 1, "value": 1.0, "mean": 1.0, "std": 1.0, "zscore": 1.0,
        "count": 1, "location": {"lat": 1.0, "lon": 2.0}})
    with pytest.raises(DecodeError) as info:
        readings.decode(alert)
    assert info.value.reason == "unknown-fingerprint"
    assert SCHEMAS["sensors.alert"].fingerprint.hex() in str(info.value)


@pytest.mark.parametrize("name", sorted(ALL))
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_cut_of_a_payload_is_truncated(name: str, data: st.DataObject) -> None:
    codec = codec_for("s", ALL[name])
    payload = codec.encode(data.draw(STRATEGIES[name]))
    for cut in range(len(payload)):
        with pytest.raises(DecodeError) as info:
            codec.decode(payload[:cut])
        assert info.value.reason == "truncated", (cut, str(info.value))


@pytest.mark.parametrize("garbage", [b"\x00", b"\xff\xff", b"more bytes"])
def test_trailing_garbage_is_refused(readings: Codec, garbage: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        readings.decode(readings.encode(READING) + garbage)
    assert info.value.reason == "trailing-bytes"
    assert f"{len(garbage)} bytes left" in str(info.value)


def test_corrupt_bodies(readings: Codec) -> None:
    payload = readings.encode({**READING, "unit": None})
    assert payload[-1:] == b"\x00"  # the union index of unit, null
    with pytest.raises(DecodeError) as info:  # union index 2 of a two-branch union
        readings.decode(payload[:-1] + b"\x04")
    assert info.value.reason == "union-index"
    # sensor_id "s1": length 2 (zig-zag 0x04), then the bytes; make them invalid UTF-8
    assert payload[HEADER_SIZE:HEADER_SIZE + 3] == b"\x04s1"
    bad = payload[:HEADER_SIZE + 1] + b"\xff\xfe" + payload[HEADER_SIZE + 3:]
    with pytest.raises(DecodeError) as info:
        readings.decode(bad)
    assert info.value.reason == "utf8"


@pytest.mark.parametrize("index", [b"\x03", b"\x01"])  # zig-zag -2, -1
def test_negative_union_index_is_refused(readings: Codec, index: bytes) -> None:
    # fastavro alone indexes the branch list from the end: -2 would read as 'null'
    payload = readings.encode({**READING, "unit": None})
    with pytest.raises(DecodeError) as info:
        readings.decode(payload[:-1] + index)
    assert info.value.reason == "union-index"
    assert f"union index {-(index[0] + 1) // 2} at byte {len(payload) - 1}" in str(info.value)


def test_decode_accepts_bytearray_and_memoryview(readings: Codec) -> None:
    payload = readings.encode(READING)
    assert readings.decode(bytearray(payload)) == READING
    assert readings.decode(memoryview(payload)) == READING


# --- evolution ---------------------------------------------------------------------------------

OLD_READING = {
    "type": "record", "name": "reading", "namespace": "sensors", "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "ts", "type": "int"},  # promoted to long since
        {"name": "value", "type": "float"},  # promoted to double since
        {"name": "location", "type": {"type": "record", "name": "Location", "fields": [
            {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"},
            {"name": "accuracy", "type": "float"}]}},  # removed since
        {"name": "firmware", "type": "string"},  # removed since
    ]}


def test_old_payload_decodes_into_the_new_schema() -> None:
    old, current = Schema.from_json(OLD_READING), SCHEMAS["sensors.reading"]
    new = Schema.from_json({**current.json, "fields": [
        *current.json["fields"], {"name": "quality", "type": "int", "default": 100}]})
    written = {"sensor_id": "s1", "ts": 1_000, "value": 0.5,
               "location": {"lat": 52.0, "lon": 4.0, "accuracy": 3.0}, "firmware": "1.2"}
    payload = Codec("readings", old).encode(written)
    assert payload[2:HEADER_SIZE] == old.fingerprint
    decoded = Codec("readings", new, history=[old]).decode(payload)
    assert decoded == {"sensor_id": "s1", "ts": 1_000, "value": 0.5,
                       "location": {"lat": 52.0, "lon": 4.0}, "unit": None, "quality": 100}
    assert decoded == avro_decode(payload[HEADER_SIZE:], old, new)  # avro resolves the same
    # a payload of the current version still decodes, and nothing else does
    both = Codec("readings", new, history=[old, new])
    current_payload = Codec("readings", new).encode({**READING, "quality": 1})
    assert both.decode(current_payload) == {**READING, "quality": 1}
    with pytest.raises(DecodeError) as info:
        Codec("readings", new).decode(payload)
    assert info.value.reason == "unknown-fingerprint"


def test_codec_refuses_a_record_of_the_old_version() -> None:
    codec = Codec("readings", SCHEMAS["sensors.reading"])
    with pytest.raises(EncodeError) as info:
        codec.encode({**READING, "firmware": "1.2"})
    assert info.value.path == "reading.firmware"
