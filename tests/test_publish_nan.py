"""NaN and the infinities in doa's JSON (:mod:`doa.collect.nonfinite`): written as the strings
"NaN", "Infinity", "-Infinity" only where the value is a float, read back only where the
schema has a float or double (in unions, arrays, maps, nested and named records), so a string
field holding "NaN" stays a string; ``doa publish``'s line check applies it."""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
import pytest

from doa.cli.publish import _valid_lines
from doa.collect.nonfinite import dumps, restorer
from doa.collect.sinks import json_line
from doa.errors import DoaError
from doa.wire.codec import Codec
from doa.wire.schema import Schema

NAN, INF = math.nan, math.inf
SCHEMA: dict[str, Any] = {"type": "record", "name": "Row", "namespace": "n", "fields": [
    {"name": "x", "type": "double"},
    {"name": "s", "type": "string"},
    {"name": "f", "type": {"type": "float"}},
    {"name": "opt", "type": ["null", "double"], "default": None},
    {"name": "either", "type": ["null", "string", "double"], "default": None},
    {"name": "mood", "type": ["null", {"type": "enum", "name": "Mood",
                                        "symbols": ["NaN", "Calm"]}, "double"]},
    {"name": "xs", "type": {"type": "array", "items": ["null", "double"]}},
    {"name": "names", "type": {"type": "array", "items": "string"}},
    {"name": "m", "type": {"type": "map", "values": "float"}},
    {"name": "inner", "type": {"type": "record", "name": "Inner", "namespace": "o",
                               "fields": [{"name": "v", "type": "double"},
                                          {"name": "w", "type": "string"}]}},
    {"name": "again", "type": ["null", "o.Inner"], "default": None},
    {"name": "pick", "type": ["null", {"type": "map", "values": "string"},
                              {"type": "array", "items": "double"}], "default": None}]}


def comparable(value: Any) -> Any:
    """``value`` with each float NaN as "<nan>" (NaN equals nothing), types kept."""
    if isinstance(value, float) and math.isnan(value):
        return "<nan>"
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return value


def test_the_schema_decides_which_nan_strings_are_floats() -> None:
    line = {"x": "NaN", "s": "NaN", "f": "-Infinity", "opt": "Infinity", "either": "NaN",
            "mood": "NaN", "xs": ["NaN", None, 1.0], "names": ["NaN", "Infinity"],
            "m": {"a": "Infinity", "b": 2.0}, "inner": {"v": "-Infinity", "w": "NaN"},
            "again": {"v": "NaN", "w": "-Infinity"}, "pick": ["Infinity"]}
    got = restorer(SCHEMA)(line)
    assert comparable(got) == {
        "x": "<nan>", "s": "NaN", "f": -INF, "opt": INF, "either": "NaN", "mood": "NaN",
        "xs": ["<nan>", None, 1.0], "names": ["NaN", "Infinity"], "m": {"a": INF, "b": 2.0},
        "inner": {"v": -INF, "w": "NaN"}, "again": {"v": "<nan>", "w": "-Infinity"},
        "pick": [INF]}
    assert isinstance(got["s"], str) and isinstance(got["x"], float)
    assert line["x"] == "NaN"  # the value read is not changed in place
    with_map = restorer(SCHEMA)({**line, "pick": {"k": "NaN"}, "mood": "-Infinity"})
    assert with_map["pick"] == {"k": "NaN"} and with_map["mood"] == -INF  # not an enum symbol
    raw = restorer({"type": "record", "name": "B", "fields": [
        {"name": "b", "type": ["bytes", "double"]}, {"name": "d", "type": "double"}]})
    assert comparable(raw({"b": "NaN", "d": "NaN"})) == {"b": "NaN", "d": "<nan>"}


def test_other_strings_and_values_that_do_not_fit_are_left_for_the_codec() -> None:
    restore = restorer(SCHEMA)
    odd = {"x": "nan", "f": "inf", "opt": "Infinite", "xs": "NaN", "inner": "NaN", "m": None}
    assert restore(odd) == odd


def test_a_schema_without_floats_is_not_walked() -> None:
    restore = restorer({"type": "record", "name": "S", "fields": [
        {"name": "s", "type": "string"}, {"name": "n", "type": ["null", "long"]}]})
    record = {"s": "NaN", "n": None}
    assert restore(record) is record


def test_a_recursive_schema() -> None:
    node = {"type": "record", "name": "Node", "fields": [
        {"name": "w", "type": "double"}, {"name": "label", "type": "string"},
        {"name": "next", "type": ["null", "Node"], "default": None}]}
    got = restorer(node)({"w": "Infinity", "label": "NaN",
                          "next": {"w": "NaN", "label": "x", "next": None}})
    assert comparable(got) == {"w": INF, "label": "NaN",
                               "next": {"w": "<nan>", "label": "x", "next": None}}


def test_writing_only_floats_become_strings() -> None:
    row = {"x": NAN, "s": "NaN", "xs": (INF, -INF, 1.0), "n": None, "in": {"v": [NAN]},
           "ok": 0.5}
    assert json.loads(dumps(row)) == {"x": "NaN", "s": "NaN", "xs": ["Infinity", "-Infinity",
                                                                      1.0],
                                      "n": None, "in": {"v": ["NaN"]}, "ok": 0.5}
    finite = {"x": 1.0, "n": None, "s": "null"}
    assert dumps(finite) == orjson.dumps(finite)
    assert json_line({"x": -INF}) == b'{"x":"-Infinity"}\n'


def test_publish_reads_what_subscribe_writes() -> None:
    codec = Codec("rows", Schema.from_json(SCHEMA))
    record = {"x": NAN, "s": "NaN", "f": INF, "opt": -INF, "either": "Infinity", "mood": -INF,
              "xs": [NAN, None], "names": ["-Infinity"], "m": {"a": -INF},
              "inner": {"v": NAN, "w": "NaN"}, "again": None, "pick": [INF]}
    decoded = codec.decode(codec.encode(record))
    [(read, _)] = _valid_lines([dumps(decoded).decode()], codec.encode,
                               restore=restorer(SCHEMA))
    assert comparable(codec.decode(codec.encode(read))) == comparable(decoded)
    assert comparable(decoded) == comparable(record)


def test_without_the_schema_a_nan_string_in_a_double_is_refused() -> None:
    codec = Codec("rows", Schema.from_json({"type": "record", "name": "R", "fields": [
        {"name": "x", "type": "double"}]}))
    with pytest.raises(DoaError, match=r"field R.x expected double, got str 'NaN'"):
        _valid_lines(['{"x": "NaN"}'], codec.encode)
    [(record, timestamp)] = _valid_lines(['{"x": "NaN"}'], codec.encode,
                                         restore=restorer(codec.schema.json))
    assert comparable(record) == {"x": "<nan>"} and timestamp is None


def test_a_bare_nan_says_to_write_the_string() -> None:
    with pytest.raises(DoaError) as caught:
        _valid_lines(['{"x": -Infinity}'], lambda r: None)
    assert str(caught.value) == (
        'line 1, column 8: not valid JSON (-Infinity: JSON has no NaN or Infinity, Python\'s '
        'json.dumps writes them): write it as the string "-Infinity" (a float or double field '
        'takes "NaN", "Infinity", "-Infinity"), null for an optional field, or leave the '
        "record out; nothing was published")
