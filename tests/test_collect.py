"""doa.collect without a broker: Avro -> Arrow types, Parquet/CSV/JSON lines round trips of
records decoded by doa's codec, compared with fastavro's reader of the same bytes."""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import random
import sys
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastavro import parse_schema, schemaless_reader
from hypothesis import given, settings
from hypothesis import strategies as st

from doa.collect.arrow import arrow_schema, arrow_type, converter
from doa.collect.bounds import Bound, parse_bound
from doa.collect.columns import feature_columns, to_table, value_type
from doa.collect.dataset import Dataset, learned_in
from doa.collect.sinks import Sink, format_of
from doa.errors import DoaError
from doa.wire.codec import HEADER_SIZE, Codec
from doa.wire.schema import Schema

PLACE = {"type": "record", "name": "Place", "fields": [
    {"name": "lat", "type": "double"}, {"name": "label", "type": ["null", "string"]}]}
RICH = {"type": "record", "name": "Rich", "namespace": "t", "fields": [
    {"name": "n", "type": "long"}, {"name": "i", "type": "int"},
    {"name": "x", "type": "double"}, {"name": "f", "type": "float"},
    {"name": "s", "type": "string"}, {"name": "ok", "type": "boolean"},
    {"name": "raw", "type": "bytes"},
    {"name": "maybe", "type": ["null", "double"], "default": None},
    {"name": "tags", "type": {"type": "map", "values": "string"}},
    {"name": "scores", "type": {"type": "array", "items": "long"}},
    {"name": "where", "type": PLACE},
    {"name": "home", "type": ["null", "Place"], "default": None},
    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "value", "type": ["null", "long", "string"], "default": None},
]}
EXPECTED = pa.schema([
    pa.field("n", pa.int64(), nullable=False), pa.field("i", pa.int32(), nullable=False),
    pa.field("x", pa.float64(), nullable=False), pa.field("f", pa.float32(), nullable=False),
    pa.field("s", pa.string(), nullable=False), pa.field("ok", pa.bool_(), nullable=False),
    pa.field("raw", pa.binary(), nullable=False), pa.field("maybe", pa.float64()),
    pa.field("tags", pa.map_(pa.string(), pa.string()), nullable=False),
    pa.field("scores", pa.list_(pa.int64()), nullable=False),
    pa.field("where", pa.struct([pa.field("lat", pa.float64(), nullable=False),
                                 pa.field("label", pa.string())]), nullable=False),
    pa.field("home", pa.struct([pa.field("lat", pa.float64(), nullable=False),
                                pa.field("label", pa.string())])),
    pa.field("kind", pa.string(), nullable=False),
    pa.field("at", pa.timestamp("ms", tz="UTC"), nullable=False),
    pa.field("value", pa.struct([pa.field("long", pa.int64()), pa.field("string", pa.string())])),
])


def test_avro_types_map_to_arrow_types() -> None:
    assert arrow_schema(RICH) == EXPECTED
    assert arrow_type({"type": "int", "logicalType": "date"}) == pa.date32()
    assert arrow_type({"type": "bytes", "logicalType": "decimal", "precision": 9,
                       "scale": 2}) == pa.decimal128(9, 2)
    assert arrow_type({"type": "fixed", "name": "H", "size": 16}) == pa.binary(16)
    assert arrow_type({"type": "long", "logicalType": "local-timestamp-micros"}) == \
        pa.timestamp("us")
    recursive = {"type": "record", "name": "Node", "fields": [
        {"name": "next", "type": ["null", "Node"]}]}
    with pytest.raises(DoaError, match="record 'Node' is recursive"):
        arrow_schema(recursive)


def record(rnd: random.Random) -> dict[str, Any]:
    return {
        "n": rnd.randrange(-2**63, 2**63), "i": rnd.randrange(-2**31, 2**31),
        "x": rnd.uniform(-1e9, 1e9), "f": rnd.uniform(-1e3, 1e3),
        "s": rnd.choice(["", "é,\"x\"\n", "plain"]), "ok": rnd.random() < 0.5,
        "raw": rnd.randbytes(rnd.randrange(4)),
        "maybe": None if rnd.random() < 0.3 else rnd.random(),
        "tags": {f"k{j}": str(j) for j in range(rnd.randrange(3))},
        "scores": [rnd.randrange(100) for _ in range(rnd.randrange(3))],
        "where": {"lat": rnd.random(), "label": rnd.choice([None, "x"])},
        "home": rnd.choice([None, {"lat": 1.5, "label": None}]),
        "kind": rnd.choice(["A", "B"]), "at": rnd.randrange(2**41),
        "value": rnd.choice([None, rnd.randrange(10), "ten"]),
    }


def encoded(records: list[dict[str, Any]]) -> tuple[Codec, list[bytes]]:
    codec = Codec("rich", Schema.from_json(RICH))
    return codec, [codec.encode(r) for r in records]


def fastavro_reads(data: list[bytes]) -> list[dict[str, Any]]:
    parsed = parse_schema(RICH)
    return [schemaless_reader(io.BytesIO(d[HEADER_SIZE:]), parsed) for d in data]


def as_fastavro(row: dict[str, Any]) -> dict[str, Any]:
    """A row read back from Parquet as fastavro gives it: the map as a dict (pyarrow lists
    its pairs), the union's value out of its branch's field."""
    value = row["value"]
    return {**row, "tags": dict(row["tags"]),
            "value": None if value is None else next(v for v in value.values() if v is not None)}


def write(path: Path, rows: list[dict[str, Any]], group: int = 64) -> None:
    fmt = format_of(str(path), None)
    with Sink(str(path), fmt, [f["name"] for f in RICH["fields"]],
              lambda: (arrow_schema(RICH), converter(RICH)), rows_per_group=group) as sink:
        for start in range(0, len(rows), 50):
            sink.write(rows[start:start + 50])


def test_parquet_round_trip_equals_fastavro_of_the_same_bytes(tmp_path: Path) -> None:
    rnd = random.Random(3)
    codec, data = encoded([record(rnd) for _ in range(300)])
    write(tmp_path / "rich.parquet", [codec.decode(d) for d in data])
    back = pq.read_table(tmp_path / "rich.parquet")
    assert back.schema.remove_metadata() == EXPECTED
    assert pq.ParquetFile(tmp_path / "rich.parquet").num_row_groups == 5  # 300 rows / 64
    for got, want in zip(back.to_pylist(), fastavro_reads(data), strict=True):
        assert as_fastavro(got) == want


@settings(max_examples=40, deadline=None)
@given(st.lists(st.fixed_dictionaries({
    "n": st.integers(-2**63, 2**63 - 1), "x": st.floats(allow_nan=False),
    "maybe": st.none() | st.floats(allow_nan=False), "s": st.text(max_size=5),
    "value": st.none() | st.integers(-2**63, 2**63 - 1) | st.text(max_size=3),
    "tags": st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=3)}),
    min_size=1, max_size=20))
def test_parquet_round_trip_of_generated_records(tmp_path_factory: Any,
                                                 parts: list[dict[str, Any]]) -> None:
    rnd = random.Random(0)
    codec, data = encoded([{**record(rnd), **p} for p in parts])
    path = tmp_path_factory.mktemp("gen") / "g.parquet"
    write(path, [codec.decode(d) for d in data], group=7)
    for got, want in zip(pq.read_table(path).to_pylist(), fastavro_reads(data), strict=True):
        assert as_fastavro(got) == want


def test_csv_and_json_lines_parse_back_equal(tmp_path: Path) -> None:
    rnd = random.Random(4)
    codec, data = encoded([record(rnd) for _ in range(120)])
    rows = [codec.decode(d) for d in data]
    rows[0]["x"] = math.nan
    write(tmp_path / "rich.csv", rows)
    write(tmp_path / "rich.jsonl", rows)
    want = fastavro_reads(data)
    want[0]["x"] = math.nan
    with open(tmp_path / "rich.csv", newline="", encoding="utf-8") as f:
        parsed = list(csv.DictReader(f))
    lines = (tmp_path / "rich.jsonl").read_text().splitlines()
    assert len(parsed) == len(lines) == len(want)
    for cells, line, w in zip(parsed, lines, want, strict=True):
        from_json = json.loads(line)
        from_csv = {
            "n": int(cells["n"]), "i": int(cells["i"]), "x": float(cells["x"]),
            "f": float(cells["f"]), "s": cells["s"], "ok": cells["ok"] == "true",
            "raw": bytes.fromhex(cells["raw"]),
            "maybe": None if cells["maybe"] == "" else float(cells["maybe"]),
            "tags": json.loads(cells["tags"]), "scores": json.loads(cells["scores"]),
            "where": json.loads(cells["where"]),
            "home": None if cells["home"] == "" else json.loads(cells["home"]),
            "kind": cells["kind"], "at": datetime.datetime.fromisoformat(cells["at"]),
            "value": None if cells["value"] == "" else
            (int(cells["value"]) if cells["value"].isdigit() else cells["value"])}
        from_json["raw"] = bytes.fromhex(from_json["raw"])
        from_json["at"] = datetime.datetime.fromisoformat(from_json["at"])
        for got in (from_csv, from_json):
            if w is want[0]:
                # JSON has no NaN: the string Avro's JSON encoding writes; CSV: nan
                assert got["x"] == "NaN" if got is from_json else math.isnan(got["x"])
                got = {**got, "x": w["x"]}
            assert got == w


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError), Sink(str(target), "jsonl", ["a"]) as sink:
        sink.write([{"a": 1}])
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with Sink(str(target), "jsonl", ["a"]) as sink:
        sink.write([{"a": 1}])
    assert target.read_text() == '{"a":1}\n' and sink.rows == 1


def test_formats_and_bounds_are_one_line_errors() -> None:
    with pytest.raises(DoaError, match=r"out.txt: cannot tell the format"):
        format_of("out.txt", None)
    assert parse_bound("2023-11-14T23:13:20+01:00") == Bound(time_ms=1_700_000_000_000)
    with pytest.raises(DoaError, match="Parquet cannot go to standard output"):
        Sink("-", "parquet", ["a"]).__enter__()


@given(st.datetimes(min_value=datetime.datetime(1971, 1, 1),
                    max_value=datetime.datetime(2200, 1, 1)))
def test_an_iso_time_bound_is_its_epoch_milliseconds(moment: datetime.datetime) -> None:
    moment = moment.replace(microsecond=moment.microsecond // 1000 * 1000,
                            tzinfo=datetime.timezone.utc)
    ms = (moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)) // \
        datetime.timedelta(milliseconds=1)
    assert parse_bound(moment.isoformat()).time_ms == ms


def test_without_pyarrow_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import doa.dataset

    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(DoaError, match=r"pip install 'doa\[data\]'"):
        doa.dataset.read("topologies/fraud.py", "scorer", broker="127.0.0.1:1")
    with pytest.raises(DoaError, match=r"doa\[data\]"):
        arrow_schema(RICH)


def test_learned_versions_follow_created_and_reset_events() -> None:
    events = [(2, "created", 2), (2, "reset", 3), (4, "created", 4), (6, "rollback", 5)]
    assert [learned_in(events, k) for k in range(1, 8)] == [2, 2, 4, 4, None, None, None]
    assert learned_in([], 1) is None


def test_feature_columns_and_table_types() -> None:
    predictions = [{"features": {"b": 1.0, "a": 2.0}, "categories": {"key": "x"},
                    "probabilities": {}}]
    names = feature_columns(type("Spec", (), {"feature_fields": ("a", "b", "key")})(),
                            predictions, taken={"key"})
    assert (names.numeric, names.text) == (["a", "b"], ["category_key"])
    assert value_type([1, None]) == "int64" and value_type([True, 1]) == "string"
    data = Dataset("m", ["prediction", "label", "a"], [
        {"prediction": True, "label": None, "a": 1.0},
        {"prediction": None, "label": "yes", "a": None}], features=["a"])
    table = to_table(data)
    assert [str(t) for t in table.schema.types] == ["bool", "string", "double"]
    assert table.schema.metadata == {b"doa.learner": b"m"}


# -- doa export / doa dataset refuse before reading anything ---------------------------------
def doa_cli(*args: str, cwd: Path) -> Any:
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}
    return subprocess.run([sys.executable, "-m", "doa.cli.app", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60, check=False)


FRAUD = str(Path(__file__).resolve().parent.parent / "topologies" / "fraud.py")
NOWHERE = "127.0.0.1:9"  # nothing listens: the command must refuse before connecting


@pytest.mark.parametrize(("args", "expected"), [
    (["export", FRAUD, "predictions", "--out", "nodir/x.jsonl"],
     "error: directory 'nodir' does not exist (for --out nodir/x.jsonl)"),
    (["dataset", FRAUD, "scorer", "--out", "nodir/x.csv"],
     "error: directory 'nodir' does not exist (for --out nodir/x.csv)"),
    (["export", FRAUD, "predictions", "--out", "."],
     "error: '.' is a directory; --out names the file to write"),
    (["export", FRAUD, "predictions", "--from", "200", "--to", "100", "--out", "x.jsonl"],
     "error: empty range: --from offset 200 is not before --to offset 100 (--from is "
     "inclusive, --to exclusive)"),
    (["dataset", FRAUD, "scorer", "--from", "100", "--to", "100", "--out", "x.jsonl"],
     "error: empty range: --from offset 100 is not before --to offset 100 (--from is "
     "inclusive, --to exclusive)"),
    (["export", FRAUD, "predictions", "--from", "2024-05-02", "--to", "1714521600000ms",
      "--out", "x.jsonl"],
     "error: empty range: --from 2024-05-02T00:00:00.000Z is not before --to "
     "2024-05-01T00:00:00.000Z (--from is inclusive, --to exclusive)"),
])
def test_export_and_dataset_refuse_at_once(tmp_path: Path, args: list[str],
                                           expected: str) -> None:
    proc = doa_cli(*args, "--broker", NOWHERE, cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", expected + "\n")
    assert list(tmp_path.iterdir()) == []  # no file, no .partial


@pytest.mark.parametrize("command", [["export", FRAUD, "predictions"],
                                     ["dataset", FRAUD, "scorer"]])
def test_a_format_that_contradicts_the_suffix_is_refused(tmp_path: Path,
                                                         command: list[str]) -> None:
    proc = doa_cli(*command, "--out", "x.parquet", "--format", "jsonl", "--broker", NOWHERE,
                   cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (
        1, "", "error: --format jsonl contradicts --out x.parquet (a .parquet file is parquet);"
               " name the file .jsonl, or leave --format out\n")
    assert list(tmp_path.iterdir()) == []
    assert format_of("x.json", "jsonl") == "jsonl" and format_of("x.txt", "csv") == "csv"
    assert format_of("-", "csv") == "csv"


@pytest.mark.parametrize("command", [["export", FRAUD, "predictions"],
                                     ["dataset", FRAUD, "scorer"]])
def test_an_unwritable_out_names_it_not_the_partial_file(tmp_path: Path,
                                                         command: list[str]) -> None:
    proc = doa_cli(*command, "--out", "/proc/nope.jsonl", "--broker", NOWHERE, cwd=tmp_path)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.startswith("error: cannot write /proc/nope.jsonl (--out): "), proc.stderr
    assert ".partial" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    with pytest.raises(DoaError, match=r"^cannot write /proc/nope.csv \(--out\): "):
        Sink("/proc/nope.csv", "csv", ["a"]).__enter__()


def test_only_comparable_bounds_make_an_empty_range() -> None:
    from doa.collect.bounds import check_range

    check_range(Bound(offset=200), Bound(time_ms=100))  # an offset and a time: not compared
    check_range(parse_bound("-2h"), parse_bound("-1h"))
    check_range(None, Bound(offset=0))
    with pytest.raises(DoaError, match=r"^empty range: --from .* is not before --to "):
        check_range(parse_bound("-1h"), parse_bound("-2h"))
