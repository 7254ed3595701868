"""Strict decoding: a body is a record only when it is well-formed Avro (doa.wire.fastcheck).

Three references: hand-made malformed bodies with the reason each must get; a plain
interpreter of the Avro specification written here (no generated code) that must agree with
the generated reader on every byte string, record and reason alike; and the Apache Avro
reader, which must refuse whatever doa refuses for a reason Apache checks too, and must read
what doa accepts as the same value.
"""

from __future__ import annotations

import datetime
import decimal
import io
import struct
import uuid
from typing import Any

import avro.errors
import avro.io
import avro.schema
import pytest
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from doa.errors import DecodeError
from doa.wire.codec import HEADER_SIZE, MARKER, Codec
from doa.wire.fastcheck import MAX_EMPTY_ITEMS, Malformed, compile_reader
from doa.wire.schema import Schema
from tests.test_codec import (
    PRIMITIVES,
    READING,
    SCHEMAS,
    SINK,
    Names,
    avro_schema,
    codec_for,
    node_of,
    strategy,
)

# A small schema of every kind, so that random bytes are often (nearly) a valid body.
MIX = Schema.from_json({
    "type": "record", "name": "Mix", "namespace": "test.mix", "fields": [
        {"name": "ok", "type": "boolean"},
        {"name": "n", "type": "int"},
        {"name": "color", "type": {"type": "enum", "name": "Color", "symbols": ["R", "G", "B"]}},
        {"name": "id", "type": {"type": "fixed", "name": "Id", "size": 2}},
        {"name": "f", "type": "float"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "counts", "type": {"type": "map", "values": ["null", "long"]}},
        {"name": "nulls", "type": {"type": "array", "items": "null"}},
        {"name": "any", "type": ["null", "int", "string", "Color", "Id", {
            "type": "record", "name": "Pair", "fields": [
                {"name": "a", "type": "int"}, {"name": "b", "type": "bytes"}]}]},
    ]})
UNIONS = Schema.from_json({
    "type": "record", "name": "Unions", "namespace": "test.unions", "fields": [
        {"name": "a", "type": ["null", "string"]},
        {"name": "b", "type": ["long", "null", "double", "boolean"]},
        {"name": "c", "type": {"type": "array", "items": ["null", "int"]}},
    ]})
PROPERTY_SCHEMAS = {"readings": SCHEMAS["sensors.reading"], "sink": SINK, "mix": MIX,
                    "unions": UNIONS}
# Where doa is stricter than the Apache Avro reader (1.12), which accepts these bodies.
STRICTER_THAN_APACHE = {"varint", "int-range", "boolean", "length", "block-size",
                        "duplicate-key"}
PROPERTY = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def payload(schema: Schema, body: bytes) -> bytes:
    return MARKER + schema.fingerprint + body


_PARSED: dict[tuple[str, bytes], Any] = {}
_MUTATED: dict[str, st.SearchStrategy[bytes]] = {}
_RECORDS: dict[str, st.SearchStrategy[Any]] = {}


def body_of(schema: Schema, record: Any) -> bytes:
    key = (schema.fullname, schema.fingerprint)
    if key not in _PARSED:
        _PARSED[key] = parse_schema(schema.json)
    buf = io.BytesIO()
    schemaless_writer(buf, _PARSED[key], record)
    return buf.getvalue()


def reason(codec: Codec, data: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        codec.decode(data)
    assert str(info.value).startswith(f"stream {codec.stream!r}: cannot decode")
    return info.value.reason


# --- each malformed body and its reason --------------------------------------------------------

LONG_TS = b"\x80\xa0\xab\xfe\xf9\x62"  # 1_700_000_000_000 as written (zig-zag varint, 6 bytes)
MIX_BODY = (b"\x01" + b"\x04" + b"\x02" + b"id" + struct.pack("<f", 1.5)
            + b"\x02\x02x\x00" + b"\x02\x02k\x02\x04\x00" + b"\x00" + b"\x00")
MIX_RECORD = {"ok": True, "n": 2, "color": "G", "id": b"id", "f": 1.5, "tags": ["x"],
              "counts": {"k": 2}, "nulls": [], "any": None}


def test_the_hand_made_bodies_are_what_they_claim() -> None:
    reading = {**READING, "unit": None}
    assert body_of(SCHEMAS["sensors.reading"], reading)[3:9] == LONG_TS
    assert body_of(MIX, MIX_RECORD) == MIX_BODY
    assert Codec("mix", MIX).decode(payload(MIX, MIX_BODY)) == MIX_RECORD


MALFORMED_READINGS = {  # sensor_id "s1", ts, value, lat, lon, unit null: 04 73 31 | ts | ...
    "negative union index -1": ("union-index", lambda b: b[:-1] + b"\x01"),
    "negative union index -2": ("union-index", lambda b: b[:-1] + b"\x03"),
    "union index 2 of 2 branches": ("union-index", lambda b: b[:-1] + b"\x04"),
    "union index as a 2-byte varint": ("union-index", lambda b: b[:-1] + b"\x80\x01"),
    "overlong varint, 11 bytes": ("varint", lambda b: b[:3] + b"\xff" * 10 + b"\x01" + b[9:]),
    "varint wider than 64 bits": ("varint", lambda b: b[:3] + b"\xff" * 9 + b"\x02" + b[9:]),
    "varint with a needless byte": ("varint", lambda b: b[:3] + LONG_TS[:-1] + b"\xe2\x00"
                                    + b[9:]),
    "truncated varint": ("truncated", lambda b: b[:3] + LONG_TS[:3]),
    "trailing bytes": ("trailing-bytes", lambda b: b + b"\x00"),
    "invalid UTF-8 in a string": ("utf8", lambda b: b[:1] + b"\xff\xfe" + b[3:]),
    "a UTF-16 surrogate in a string": ("utf8", lambda b: b"\x06\xed\xa0\x80" + b[3:]),
    "truncated body": ("truncated", lambda b: b[:-10]),
    "string longer than the body": ("truncated", lambda b: b"\x7e" + b[1:]),
    "negative string length": ("length", lambda b: b"\x03" + b[1:]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_READINGS))
def test_malformed_reading_is_a_decode_error_with_its_reason(case: str) -> None:
    schema = SCHEMAS["sensors.reading"]
    good = body_of(schema, {**READING, "unit": None})
    assert good[:3] == b"\x04s1" and good[-1:] == b"\x00"
    expected, corrupt = MALFORMED_READINGS[case]
    assert reason(Codec("readings", schema), payload(schema, corrupt(good))) == expected


MALFORMED_MIX = {
    "boolean byte 2": ("boolean", lambda b: b"\x02" + b[1:]),
    "int beyond 32 bits": ("int-range", lambda b: b[:1] + b"\x80\x80\x80\x80\x10" + b[2:]),
    "int in 6 bytes": ("varint", lambda b: b[:1] + b"\x84\x80\x80\x80\x80\x00" + b[2:]),
    "enum index -1": ("enum-index", lambda b: b[:2] + b"\x01" + b[3:]),
    "enum index 3 of 3 symbols": ("enum-index", lambda b: b[:2] + b"\x06" + b[3:]),
    "fixed cut short": ("truncated", lambda b: b[:4]),
    "float cut short": ("truncated", lambda b: b[:7]),
    "array block size that lies": ("block-size", lambda b: b[:9] + b"\x01\x02\x02x" + b[12:]),
    "map with a key twice": ("duplicate-key", lambda b: b[:13] + b"\x04\x02k\x02\x04\x02k\x00"
                             + b[18:]),
    "map union index -1": ("union-index", lambda b: b[:16] + b"\x01" + b[17:]),
    "negative block byte size": ("length", lambda b: b[:9] + b"\x01\x01\x02x" + b[12:]),
    "too many items that take no bytes": (
        "length", lambda b: b[:-2] + _zigzag(MAX_EMPTY_ITEMS + 1) + b"\x00\x00"),
    "record union branch cut short": ("truncated", lambda b: b[:-1] + b"\x0a\x02"),
}


def _zigzag(n: int) -> bytes:
    x, out = n << 1, b""
    while x >= 0x80:
        out += bytes([x & 0x7F | 0x80])
        x >>= 7
    return out + bytes([x])


@pytest.mark.parametrize("case", sorted(MALFORMED_MIX))
def test_malformed_mix_is_a_decode_error_with_its_reason(case: str) -> None:
    expected, corrupt = MALFORMED_MIX[case]
    assert reason(Codec("mix", MIX), payload(MIX, corrupt(MIX_BODY))) == expected


def test_blocks_in_every_form_the_spec_allows_are_read() -> None:
    # tags ["x", "y"] as two blocks, the second with a negative count and its byte size
    body = MIX_BODY[:9] + b"\x02\x02x" + b"\x01\x04\x02y" + b"\x00" + MIX_BODY[13:]
    record = Codec("mix", MIX).decode(payload(MIX, body))
    assert record == {**MIX_RECORD, "tags": ["x", "y"]}
    assert record == avro_read(MIX, body)
    nulls = MIX_BODY[:-2] + b"\x06\x04\x00\x00"  # [None] * 5 in two blocks, then union null
    assert Codec("mix", MIX).decode(payload(MIX, nulls))["nulls"] == [None] * 5


def test_a_value_nested_deeper_than_the_stack_is_too_deep() -> None:
    # f_tree of SINK: label "", children [tree]; 5000 levels
    reader = compile_reader({"type": "record", "name": "Tree", "fields": [
        {"name": "label", "type": "string"},
        {"name": "children", "type": {"type": "array", "items": "Tree"}}]})
    assert reader(b"\x00\x02" * 3 + b"\x00\x00" + b"\x00" * 3, 0) == {
        "label": "", "children": [{"label": "", "children": [
            {"label": "", "children": [{"label": "", "children": []}]}]}]}
    with pytest.raises(Malformed) as info:
        reader(b"\x00\x02" * 5000 + b"\x00\x00" + b"\x00" * 5000, 0)
    assert info.value.reason == "too-deep"


LOGICAL = Schema.from_json({
    "type": "record", "name": "Times", "namespace": "test.logical", "fields": [
        {"name": "ts_ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "ts_us", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-millis"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "t_ms", "type": {"type": "int", "logicalType": "time-millis"}},
        {"name": "t_us", "type": {"type": "long", "logicalType": "time-micros"}},
        {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "price", "type": {"type": "bytes", "logicalType": "decimal",
                                   "precision": 9, "scale": 2}},
        {"name": "cents", "type": ["null", {"type": "fixed", "name": "Cents", "size": 4,
                                            "logicalType": "decimal", "precision": 6}]},
        {"name": "again", "type": "Cents"},
        {"name": "odd", "type": {"type": "string", "logicalType": "no-such-type"}},
    ]})


def test_logical_types_decode_as_fastavro_decodes_them() -> None:
    utc = datetime.timezone.utc
    record = {"ts_ms": datetime.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=utc),
              "ts_us": datetime.datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=utc),
              "local": datetime.datetime(2024, 5, 1, 12, 0), "day": datetime.date(2024, 2, 29),
              "t_ms": datetime.time(23, 59, 59, 999000), "t_us": datetime.time(0, 0, 0, 1),
              "id": uuid.UUID(int=7), "price": decimal.Decimal("-12.34"),
              "cents": decimal.Decimal("250"), "again": decimal.Decimal("-1"), "odd": "x"}
    body = body_of(LOGICAL, record)
    decoded = Codec("times", LOGICAL).decode(payload(LOGICAL, body))
    assert decoded == schemaless_reader(io.BytesIO(body), parse_schema(LOGICAL.json))
    assert decoded == record
    bad_uuid = body_of(LOGICAL, {**record, "id": "not a uuid"})
    assert reason(Codec("times", LOGICAL), payload(LOGICAL, bad_uuid)) == "logical"


def test_an_old_version_is_checked_against_its_own_schema_then_resolved() -> None:
    old = Schema.from_json({"type": "record", "name": "reading", "namespace": "sensors",
                            "fields": [{"name": "sensor_id", "type": "string"},
                                       {"name": "note", "type": ["null", "string"]}]})
    new = Schema.from_json({**old.json, "fields": [old.json["fields"][0]]})
    codec = Codec("readings", new, history=[old])
    good = body_of(old, {"sensor_id": "s1", "note": None})
    assert codec.decode(payload(old, good)) == {"sensor_id": "s1"}
    assert reason(codec, payload(old, good[:-1] + b"\x03")) == "union-index"
    assert reason(codec, payload(old, good + b"\x00")) == "trailing-bytes"


# --- the oracle: a plain interpreter of the Avro specification ---------------------------------


class Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Spec:
    """Reads a body as the Avro specification says, strict where doa is strict.

    ``canonical`` ends False when the body used a freedom of the encoding (an array or map
    in several blocks or with a negative count, a float NaN whose bits Python does not keep):
    then re-encoding the value gives other bytes for the same value.
    """

    def __init__(self, schema: Schema) -> None:
        self.schema = schema.json
        self.names = Names(schema.json)

    def read(self, data: bytes) -> tuple[Any, bool]:
        self.d, self.p, self.canonical = data, 0, True
        value = self.value(self.schema, "")
        if self.p != len(data):
            raise Refused("trailing-bytes")
        return value, self.canonical

    def take(self, n: int) -> bytes:
        if self.p + n > len(self.d):
            raise Refused("truncated")
        self.p += n
        return self.d[self.p - n:self.p]

    def varint(self, bits: int = 64) -> int:
        x = shift = size = 0
        while True:
            b = self.take(1)[0]
            x |= (b & 0x7F) << shift
            shift, size = shift + 7, size + 1
            if b < 0x80:
                break
            if size == 10:
                raise Refused("varint")
        if (size > 1 and b == 0) or x >= 1 << 64:
            raise Refused("varint")
        value = (x >> 1) ^ -(x & 1)
        if bits == 32 and not -(2**31) <= value < 2**31:
            raise Refused("int-range")
        return value

    def size(self) -> int:
        n = self.varint()
        if n < 0:
            raise Refused("length")
        return n

    def value(self, schema: Any, ns: str) -> Any:
        schema, ns = node_of(schema, self.names, ns)
        if isinstance(schema, list):
            i = self.varint(32)
            if not 0 <= i < len(schema):
                raise Refused("union-index")
            return self.value(schema[i], ns)
        if isinstance(schema, str):
            return self.primitive(schema)
        kind = schema["type"]
        if kind == "record":
            return {f["name"]: self.value(f["type"], ns) for f in schema["fields"]}
        if kind == "enum":
            i = self.varint(32)
            if not 0 <= i < len(schema["symbols"]):
                raise Refused("enum-index")
            return schema["symbols"][i]
        if kind == "fixed":
            return self.take(schema["size"])
        return self.blocks(schema, ns)

    def primitive(self, kind: str) -> Any:
        assert kind in PRIMITIVES
        if kind == "null":
            return None
        if kind == "boolean":
            b = self.take(1)[0]
            if b > 1:
                raise Refused("boolean")
            return b == 1
        if kind in ("int", "long"):
            return self.varint(32 if kind == "int" else 64)
        if kind in ("float", "double"):
            fmt = "<f" if kind == "float" else "<d"
            raw = self.take(struct.calcsize(fmt))
            (value,) = struct.unpack(fmt, raw)
            if struct.pack(fmt, value) != raw:
                self.canonical = False
            return value
        raw = self.take(self.size())
        if kind == "bytes":
            return raw
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused("utf8") from None

    def blocks(self, schema: dict[str, Any], ns: str) -> Any:
        is_map = schema["type"] == "map"
        out: Any = {} if is_map else []
        blocks = total = 0
        while count := self.varint():
            blocks += 1
            end = None
            if count < 0:
                self.canonical, count = False, -count
                end = self.size()
                end += self.p
            total += count
            if total > MAX_EMPTY_ITEMS and self.min_empty(schema, ns):
                raise Refused("length")
            for _ in range(count):
                if is_map:
                    key = self.primitive("string")
                    value = self.value(schema["values"], ns)
                    if key in out:
                        raise Refused("duplicate-key")
                    out[key] = value
                else:
                    out.append(self.value(schema["items"], ns))
            if end is not None and self.p != end:
                raise Refused("block-size")
        self.canonical = self.canonical and blocks <= 1
        return out

    def min_empty(self, schema: dict[str, Any], ns: str) -> bool:
        """Whether an item can take no bytes (doa caps the count of those only)."""
        if schema["type"] == "map":
            return False
        item, _ = node_of(schema["items"], self.names, ns)
        return item == "null" or (isinstance(item, dict) and item["type"] == "record"
                                  and not item["fields"])


def avro_read(schema: Schema, body: bytes) -> Any:
    """The Apache Avro reader's value for ``body``; it raises when it refuses the body."""
    buf = io.BytesIO(body)
    value = avro.io.DatumReader(avro_schema(schema)).read(avro.io.BinaryDecoder(buf))
    if buf.tell() != len(body):
        raise Refused("trailing-bytes")
    return value


def mutated(schema: Schema) -> st.SearchStrategy[bytes]:
    """Valid bodies with bytes changed, inserted, removed, or cut off."""
    interesting = st.sampled_from([0x00, 0x01, 0x02, 0x03, 0x04, 0x7F, 0x80, 0x81, 0xFE, 0xFF])
    edit = st.tuples(st.sampled_from(["set", "insert", "delete", "cut", "append"]),
                     st.integers(0, 10_000), st.one_of(interesting, st.integers(0, 255)))

    def apply(body: bytes, edits: list[tuple[str, int, int]]) -> bytes:
        data = bytearray(body)
        for op, at, byte in edits:
            i = at % (len(data) + 1)
            if op == "set" and i < len(data):
                data[i] = byte
            elif op == "insert":
                data.insert(i, byte)
            elif op == "delete" and i < len(data):
                del data[i]
            elif op == "cut":
                del data[i:]
            elif op == "append":
                data.append(byte)
        return bytes(data)

    bodies = strategy(schema.json).map(lambda r: body_of(schema, r))
    return st.builds(apply, bodies, st.lists(edit, min_size=0, max_size=3))


@pytest.mark.parametrize("name", sorted(PROPERTY_SCHEMAS))
@PROPERTY
@given(data=st.data())
def test_any_bytes_decode_to_a_record_that_re_encodes_to_them_or_are_refused(
        name: str, data: st.DataObject) -> None:
    schema = PROPERTY_SCHEMAS[name]
    if name not in _MUTATED:  # one strategy per schema: hypothesis re-analyses a new one
        _MUTATED[name] = st.one_of(mutated(schema), st.binary(max_size=48))
    body = data.draw(_MUTATED[name], label="body")
    codec = codec_for(name, schema)
    try:
        expected, canonical = Spec(schema).read(body)
    except Refused as exc:
        refused = exc.reason
    else:
        refused = None
    try:
        record = codec.decode(payload(schema, body))
    except DecodeError as exc:
        event(f"refused: {exc.reason}")
        assert exc.reason == refused, (exc.reason, refused, str(exc))
        try:
            avro_read(schema, body)
        except Exception:
            return  # Apache refuses it as well
        assert exc.reason in STRICTER_THAN_APACHE, (exc.reason, str(exc))
        return
    event("accepted" + ("" if canonical else ", not canonical"))
    assert refused is None, (refused, record)
    assert repr(record) == repr(expected)  # repr: NaN equals NaN, -0.0 differs from 0.0
    assert repr(avro_read(schema, body)) == repr(record)
    again = codec.encode(record)[HEADER_SIZE:]
    if canonical:
        assert again == body
    else:  # several blocks, a NaN payload: re-encoding gives the canonical form
        assert repr(codec.decode(payload(schema, again))) == repr(record)
        assert Spec(schema).read(again)[1]


@pytest.mark.parametrize("name", sorted(PROPERTY_SCHEMAS))
@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_valid_bodies_decode_as_fastavro_decodes_them(name: str, data: st.DataObject) -> None:
    schema = PROPERTY_SCHEMAS[name]
    if name not in _RECORDS:
        _RECORDS[name] = strategy(schema.json)
    body = body_of(schema, data.draw(_RECORDS[name]))
    decoded = codec_for(name, schema).decode(payload(schema, body))
    assert repr(decoded) == repr(schemaless_reader(io.BytesIO(body), parse_schema(schema.json)))


@pytest.mark.parametrize("case", sorted(c for c, (r, _) in MALFORMED_READINGS.items()
                                         if r not in STRICTER_THAN_APACHE))
def test_apache_avro_refuses_these_bodies_too(case: str) -> None:
    schema = SCHEMAS["sensors.reading"]
    good = body_of(schema, {**READING, "unit": None})
    assert repr(avro_read(schema, good)) == repr({**READING, "unit": None})
    with pytest.raises((avro.errors.AvroException, Refused, UnicodeDecodeError, TypeError)):
        avro_read(schema, MALFORMED_READINGS[case][1](good))


@pytest.mark.parametrize("case", sorted(c for c, (r, _) in MALFORMED_MIX.items()
                                         if r in STRICTER_THAN_APACHE and "no bytes" not in c))
def test_where_apache_avro_is_lax_doa_is_strict(case: str) -> None:
    # Apache Avro 1.12 reads these bodies; each would re-encode to other bytes, or loses data
    expected, corrupt = MALFORMED_MIX[case]
    avro_read(MIX, corrupt(MIX_BODY))
    assert reason(Codec("mix", MIX), payload(MIX, corrupt(MIX_BODY))) == expected


def test_a_huge_count_of_null_items_is_located_at_once() -> None:
    """A corrupt block count of 2**40 null items (no bytes each) made the error's second walk
    (doa.wire.locate) loop for hours: found by the fuzz test above on a random example."""
    from doa.wire.locate import where

    schema = {"type": "record", "name": "R", "fields": [
        {"name": "a", "type": {"type": "array", "items": "null"}}, {"name": "b", "type": "int"}]}
    count = (2**40) << 1  # zigzag
    varint = bytearray()
    while count >= 0x80:
        varint.append((count & 0x7F) | 0x80)
        count >>= 7
    varint.append(count)
    assert where(schema, bytes(10) + bytes(varint) + b"\x00\xff", 10) == "R.b"
