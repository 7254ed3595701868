"""A refused body's decode error names the field it goes wrong in (doa.wire.locate).

Reference for where each field's bytes lie: fastavro's writer, run on the record cut to its
first fields (each prefix of a record schema is a record schema): a body cut anywhere inside
a field's bytes must be reported in that field.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import given
from hypothesis import strategies as st

from doa.errors import DecodeError
from doa.wire.codec import MARKER, Codec
from doa.wire.locate import where
from doa.wire.schema import Schema
from tests.test_codec import PROPERTY, SCHEMAS, strategy
from tests.test_codec_strict import PROPERTY_SCHEMAS


def _encode(schema: Any, record: Any) -> bytes:
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), record)
    return buf.getvalue()


def field_spans(schema: Schema, record: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Each top-level field's name and byte span in the record's body, by fastavro."""
    spans, start = [], 0
    fields = schema.json["fields"]
    for i, f in enumerate(fields):
        prefix = {**schema.json, "fields": fields[: i + 1]}
        end = len(_encode(prefix, {g["name"]: record[g["name"]] for g in fields[: i + 1]}))
        spans.append((f["name"], start, end))
        start = end
    return spans


@pytest.mark.parametrize("name", sorted(PROPERTY_SCHEMAS))
@given(data=st.data())
@PROPERTY
def test_a_body_cut_inside_a_field_is_reported_in_that_field(name: str,
                                                              data: st.DataObject) -> None:
    schema = PROPERTY_SCHEMAS[name]
    record = data.draw(strategy(schema.json))
    body = _encode(schema.json, record)
    assert where(schema.json, body, 0) is None  # whole: nothing to report
    spans = [s for s in field_spans(schema, record) if s[2] > s[1]]
    assert spans[-1][2] == len(body)
    field, start, end = data.draw(st.sampled_from(spans))
    cut = data.draw(st.integers(start, end - 1))
    path = where(schema.json, body[:cut], 0)
    root = schema.fullname.rsplit(".", 1)[-1]
    assert path is not None and (path == f"{root}.{field}"
                                 or path.startswith((f"{root}.{field}.", f"{root}.{field}["))
                                 ), (path, field, cut)


READING = SCHEMAS["sensors.reading"]
GOOD = {"sensor_id": "s1", "ts": 1_700_000_000_000, "value": 21.5,
        "location": {"lat": 1.0, "lon": 2.0}, "unit": "C"}


def decode_error(body: bytes) -> str:
    with pytest.raises(DecodeError) as info:
        Codec("readings", READING).decode(MARKER + READING.fingerprint + body)
    return str(info.value)


def test_decode_errors_name_the_field() -> None:
    body = _encode(READING.json, GOOD)
    unit = len(_encode(READING.json, {**GOOD, "unit": None})) - 1  # the union index's byte
    assert decode_error(body[:unit] + b"\x0e" + body[unit + 1:]).endswith(
        "the union has 2 branches (in field reading.unit)")
    assert decode_error(b"\x04\xff\xfe" + body[3:]).endswith("(in field reading.sensor_id)")
    assert decode_error(body[:5]).endswith("(in field reading.ts)")
    # after the record: no field to name, the reader's reason alone
    assert decode_error(body + b"\x00").endswith("after the value, which ends at byte "
                                                 f"{10 + len(body)}")
