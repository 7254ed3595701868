"""The generated encoder against fastavro, the codec's old path and the Apache avro reader.

Schemas are drawn by a hypothesis strategy written here (records, nested records, enums, fixed,
arrays, maps, optional values, unions of primitives, defaults); values come from the strategy
of test_codec, then some are spoiled at one place (a bool for a number, an int out of range, a
float beyond float32, a lone surrogate, a bytearray, an extra key, a missing field...). For
each: when the encoder returns bytes they are fastavro's and the codec's old path's, and the
Apache avro reader reads them back; when the old path refuses, ``Codec.encode`` still raises
its very error.
"""

from __future__ import annotations

import copy
import io
import json
import math
import random
from pathlib import Path
from typing import Any

import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from doa.errors import EncodeError
from doa.wire.codec import HEADER_SIZE, Codec
from doa.wire.encoder import MAX_CACHED_KEYS, MAX_LAYOUTS, compile_encoder
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir
from tests.test_codec import Names, example, positions, strategy

REPO = Path(__file__).resolve().parent.parent
COMMON = {s.fullname: s for s in SchemaSet.load(REPO / "schemas", REPO / "tests" / "schemas")}
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
PRIMS = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
DEFAULTS: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(), "boolean": st.booleans(), "int": st.integers(-5, 5),
    "long": st.integers(-(2**40), 2**40), "float": st.sampled_from([0, 1.5, -2.0]),
    "double": st.sampled_from([0, 0.25, -1e300]), "string": st.sampled_from(["", "é", "x"]),
}


# --- random schemas ------------------------------------------------------------------------------


@st.composite
def schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A record schema of every kind the encoder knows, and a few it leaves to fastavro."""
    count = iter(range(1000))

    def name(prefix: str) -> str:
        return f"{prefix}{next(count)}"

    def node(depth: int) -> Any:
        choices = ["prim"] * 4 + (["record", "array", "map", "optional"] if depth < 3 else [])
        kind = draw(st.sampled_from([*choices, "enum", "fixed", "union", "wrapped", "logical"]))
        if kind == "prim":
            return draw(st.sampled_from(PRIMS))
        if kind == "wrapped":
            return {"type": draw(st.sampled_from(PRIMS))}
        if kind == "logical":
            return {"type": "long", "logicalType": "timestamp-millis"}
        if kind == "enum":
            return {"type": "enum", "name": name("E"),
                    "symbols": draw(st.lists(st.sampled_from("ABCDEFG"), min_size=1,
                                             max_size=4, unique=True))}
        if kind == "fixed":
            return {"type": "fixed", "name": name("F"), "size": draw(st.integers(0, 4))}
        if kind == "union":
            return draw(st.lists(st.sampled_from(PRIMS), min_size=1, max_size=4, unique=True))
        if kind == "optional":
            inner = node(depth + 1)
            if isinstance(inner, list) or inner in ("null", {"type": "null"}):
                return ["null", "string"]
            return ["null", inner] if draw(st.booleans()) else [inner, "null"]
        if kind == "array":
            return {"type": "array", "items": node(depth + 1)}
        if kind == "map":
            return {"type": "map", "values": node(depth + 1)}
        return record(depth + 1)

    def record(depth: int) -> dict[str, Any]:
        fields = []
        for i in range(draw(st.integers(0 if depth else 1, 5))):
            field: dict[str, Any] = {"name": f"f{i}", "type": node(depth)}
            default = draw(st.booleans())
            t = field["type"]
            if default and isinstance(t, str) and t in DEFAULTS:
                field["default"] = draw(DEFAULTS[t])
            elif default and isinstance(t, list) and t[0] == "null":
                field["default"] = None
            elif default and isinstance(t, dict) and t["type"] in ("array", "map"):
                field["default"] = [] if t["type"] == "array" else {}
            fields.append(field)
        return {"type": "record", "name": name("R"), "fields": fields}

    return record(0)


JUNK = st.one_of(
    st.none(), st.booleans(), st.sampled_from([2**31, -(2**31) - 1, 2**63, 2**1024, 2**70]),
    st.sampled_from([1e39, -1e39, 3.4028235677973366e38, math.inf, -math.inf, math.nan, -0.0]),
    st.integers(-(2**65), 2**65), st.floats(), st.text(max_size=3),
    st.sampled_from(["\ud800", "A", "B", "x\udfff"]), st.binary(max_size=4),
    st.binary(max_size=4).map(bytearray), st.lists(st.integers(-3, 3), max_size=2),
    st.tuples(st.floats(), st.integers(-3, 3)), st.dictionaries(st.text(max_size=2),
                                                                st.integers(), max_size=2),
    st.dictionaries(st.integers(0, 3), st.integers(), min_size=1, max_size=2),
)


def spoil(data: st.DataObject, schema: dict[str, Any], record: dict[str, Any]) -> str:
    """Change ``record`` in place at one place; say how."""
    how = data.draw(st.sampled_from(["junk", "junk", "extra key", "drop a field", "tuple"]))
    if how == "extra key":
        record[data.draw(st.sampled_from(["zz", "f0", "-type"]))] = 1
        return how
    if how == "drop a field" and record:
        del record[data.draw(st.sampled_from(sorted(record)))]
        return how
    places = list(positions(schema, record, Names(schema), "", (), "R"))
    if not places:
        return "unchanged"
    keys, _ = data.draw(st.sampled_from(places))
    node: Any = record
    for k in keys[:-1]:
        node = node[k]
    if how == "tuple" and isinstance(node[keys[-1]], list):
        node[keys[-1]] = tuple(node[keys[-1]])
        return how
    node[keys[-1]] = data.draw(JUNK)
    return "junk"


# --- references ----------------------------------------------------------------------------------


def fastavro_body(schema: Schema, record: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema.json), record, strict_allow_default=True,
                      disable_tuple_notation=True)
    return buf.getvalue()


def old_codec(schema: Schema) -> Codec:
    """The codec as it was before the generated encoder: the check, fastavro, the explainer."""
    codec = Codec("s", schema)
    codec._encode = lambda record: None
    return codec


def avro_read(schema: Schema, body: bytes) -> Any:
    buf = io.BytesIO(body)
    reader = avro.io.DatumReader(avro.schema.parse(json.dumps(schema.json)))
    value = reader.read(avro.io.BinaryDecoder(buf))
    assert buf.tell() == len(body), "avro did not read the whole body"
    return value


def with_defaults(schema: Any, record: Any) -> Any:
    """``record`` as a reader sees it: missing fields with their defaults, tuples as lists."""
    return {f["name"]: _lists(record.get(f["name"], f.get("default")))
            for f in schema["fields"]}


def _lists(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_lists(x) for x in value]
    if isinstance(value, dict):
        return {k: _lists(x) for k, x in value.items()}
    return value


def check_against_old_path(schema: Schema, record: Any) -> bytes | None:
    """The generated encoder and Codec.encode agree with the old path; the encoder's bytes."""
    before = copy.deepcopy(record) if not _has_nan(record) else None
    body = compile_encoder(schema.json)(record)
    try:
        expected = old_codec(schema).encode(record)
    except EncodeError as error:
        assert body is None, f"the encoder wrote a record the old path refuses: {error}"
        with pytest.raises(EncodeError) as info:
            Codec("s", schema).encode(record)
        assert str(info.value) == str(error)
        event("refused by both")
        return None
    assert Codec("s", schema).encode(record) == expected
    if body is None:
        event("fell back")
        return None
    event("encoded")
    assert body == expected[HEADER_SIZE:] == fastavro_body(schema, record)
    if before is not None:
        assert record == before, "the encoder changed the record"
    return body


def _has_nan(value: Any) -> bool:
    if isinstance(value, float):
        return math.isnan(value)
    if isinstance(value, (list, tuple)):
        return any(_has_nan(x) for x in value)
    if isinstance(value, dict):
        return any(_has_nan(x) for x in value.values())
    return False


# --- properties ----------------------------------------------------------------------------------


@PROPERTY
@given(data=st.data())
def test_valid_records_encode_as_fastavro_and_avro_reads_them(data: st.DataObject) -> None:
    schema = Schema.from_json(data.draw(schemas()))
    record = data.draw(strategy(schema.json))
    body = check_against_old_path(schema, record)
    assert body is not None or not _plain_schema(schema.json), "fell back on a plain record"
    if body is not None:
        read = avro_read(schema, body)
        assert read == schemaless_reader(io.BytesIO(body), parse_schema(schema.json))
        if not _float_before_int(schema.json):  # else fastavro writes an int as a float
            assert read == with_defaults(schema.json, record)


@PROPERTY
@given(data=st.data())
def test_spoiled_records_encode_as_before_or_raise_the_same_error(data: st.DataObject
                                                                  ) -> None:
    schema = Schema.from_json(data.draw(schemas()))
    record = data.draw(strategy(schema.json))
    event(spoil(data, schema.json, record))
    body = check_against_old_path(schema, record)
    if body is not None and not _has_nan(record):  # (a float field rounds to float32)
        assert avro_read(schema, body) == schemaless_reader(io.BytesIO(body),
                                                            parse_schema(schema.json))


def _plain_schema(schema: Any) -> bool:
    """No logical type, no union beyond the optional value or primitives: never falls back."""
    text = json.dumps(schema)
    return "logicalType" not in text and all(
        len(u) <= 2 or all(isinstance(b, str) for b in u) for u in _unions(schema))


def _float_before_int(schema: Any) -> bool:
    """A union where fastavro picks float or double for an int (an int branch comes later)."""
    for union in _unions(schema):
        kinds = [b if isinstance(b, str) else b.get("type") for b in union]
        floats = [i for i, k in enumerate(kinds) if k in ("float", "double")]
        if floats and any(k in ("int", "long") and i > floats[0] for i, k in enumerate(kinds)):
            return True
    return False


def _unions(node: Any) -> list[list[Any]]:
    if isinstance(node, list):
        return [node, *(u for b in node for u in _unions(b))]
    if isinstance(node, dict):
        return [u for v in node.values() for u in _unions(v)]
    return []


# --- the schemas doa ships and its demos use ----------------------------------------------------


SHIPPED = {**COMMON, **{s.fullname: s for s in SchemaSet.load(builtin_schema_dir())}}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_schemas_encode_typical_records_without_falling_back(name: str) -> None:
    schema = SHIPPED[name]
    rng = random.Random(name)
    encode = compile_encoder(schema.json)
    for _ in range(30):
        record = example(schema.json, Names(schema.json), "", rng)
        body = encode(record)
        assert body is not None, f"fell back on {record!r}"
        assert body == fastavro_body(schema, record)
        assert avro_read(schema, body) == record
        assert Codec("s", schema).decode(Codec("s", schema).encode(record)) == record


def test_prediction_with_features_a_flat_record_and_the_numbers_fastavro_takes() -> None:
    schema = SHIPPED["doa.Prediction"]
    record = {"join": "j1", "key": None, "model": "m", "model_version": 2**40,
              "prediction": 2**70, "score": 3, "features": {"a": 1, "é": -0.0},
              "timestamp": 1_700_000_000_000}
    body = compile_encoder(schema.json)(record)
    assert body == fastavro_body(schema, record)  # 2**70 goes to the double branch
    assert avro_read(schema, body)["prediction"] == float(2**70)
    for bad in ({**record, "timestamp": True}, {**record, "model": "\ud800"},
                {**record, "features": {"a": "1"}}, {**record, "extra": 1}):
        assert compile_encoder(schema.json)(bad) is None
        with pytest.raises(EncodeError):
            Codec("s", schema).encode(bad)


def test_the_header_is_the_prefix() -> None:
    schema = SHIPPED["doa.Prediction"]
    codec = Codec("s", schema)
    record = {"join": "j", "model": "m", "model_version": 1, "features": {}, "timestamp": 0}
    assert codec.encode(record) == old_codec(schema).encode(record)
    assert codec.encode(record)[HEADER_SIZE:] == compile_encoder(schema.json)(record)


def test_map_keys_cached_or_not_encode_the_same() -> None:
    schema = SHIPPED["doa.Prediction"]
    encode = compile_encoder(schema.json)
    rng = random.Random(5)
    same = [f"f{i}" for i in range(30)]
    for i in range(MAX_LAYOUTS + 3 * MAX_CACHED_KEYS // 40):  # past both caches' sizes
        keys = same if i % 3 else [f"f{rng.randrange(5000)}é" for _ in range(40)]
        record = {"join": "j", "model": "m", "model_version": i, "timestamp": i,
                  "features": {k: rng.choice([rng.random(), -3, 2**60]) for k in keys},
                  "categories": {k: k for k in keys[:3]}}
        assert encode(record) == fastavro_body(schema, record)
    bad = {"join": "j", "model": "m", "model_version": 1, "timestamp": 1,
           "features": {"\ud800": 1.0}}
    for bad_record in (bad, {**bad, "features": {"a": 1.0, 2: 1.0}},
                       {**bad, "features": {"a": 1.0, "b": True}}):
        assert encode(bad_record) is None and encode(bad_record) is None  # never cached
        with pytest.raises(EncodeError):
            Codec("s", schema).encode(bad_record)


def test_an_input_event_passed_on_whole_encodes_as_its_dict_without_falling_back() -> None:
    """A node forwarding its input events (``(e, e)``) gives the encoder a doa.events.Event, a
    dict subclass: same bytes as the plain dict, by the generated path; other dict subclasses
    still take the old path."""
    from doa.events import make_event

    schema = {"type": "record", "name": "R", "fields": [
        {"name": "n", "type": "long"}, {"name": "x", "type": "double"},
        {"name": "s", "type": ["null", "string"], "default": None}]}
    encode = compile_encoder(schema)
    record = {"n": 3, "x": 0.5, "s": "a"}
    event = make_event(dict(record), "in", 0, 7, 0, None, None)
    assert encode(event) == encode(record) is not None

    class Other(dict):  # type: ignore[type-arg]
        pass

    assert encode(Other(record)) is None
