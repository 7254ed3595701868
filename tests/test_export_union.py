"""Unions in a Parquet export (walk finding: ``prediction`` came out as
``struct<boolean, long, double, string>`` and a label join crashed on ``astype(float)``).

A union of null and one number type is a plain nullable column of that type; a union of
several types (``doa.Prediction``'s ``prediction``) stays a struct, one field per branch, and the
README's export paragraph says so and how to take the branch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doa.collect.arrow import arrow_schema, converter
from doa.collect.sinks import Sink

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

ROOT = Path(__file__).resolve().parent.parent
PREDICTION = json.loads((ROOT / "doa" / "schemas" / "prediction.avsc").read_text())
PREDICTION_UNION = next(f["type"] for f in PREDICTION["fields"] if f["name"] == "prediction")


def _export(tmp_path: Path, branches: Any, values: list[Any]) -> Any:
    schema = {"type": "record", "name": "Quote", "fields": [{"name": "p", "type": branches}]}
    out = str(tmp_path / "x.parquet")
    with Sink(out, "parquet", ["p"], lambda: (arrow_schema(schema), converter(schema))) as sink:
        sink.write([{"p": v} for v in values])
    return pq.read_table(out)


@pytest.mark.parametrize(("branches", "arrow_type"), [
    (["null", "double"], "double"), (["double", "null"], "double"),
    (["null", {"type": "double"}], "double"), (["null", "float"], "float"),
    (["null", "long"], "int64"), (["null", "int"], "int32")])
def test_null_and_one_number_is_a_plain_nullable_column(tmp_path: Path, branches: Any,
                                                         arrow_type: str) -> None:
    first, last = (1.5, 2.0) if arrow_type in ("double", "float") else (1, 2)
    table = _export(tmp_path, branches, [first, None, last])
    field = table.schema.field("p")
    assert (str(field.type), field.nullable) == (arrow_type, True)
    assert table.to_pandas()["p"].astype(float).tolist()[::2] == [float(first), float(last)]


def test_a_several_type_union_is_a_struct_and_the_readme_says_how_to_take_it(
        tmp_path: Path) -> None:
    assert PREDICTION_UNION == ["null", "boolean", "long", "double", "string"]
    table = _export(tmp_path, PREDICTION_UNION, [1.5, None, 2.0])
    assert str(table.schema.field("p").type) == (
        "struct<boolean: bool, long: int64, double: double, string: string>")
    import pyarrow.compute as pc

    assert pc.struct_field(table["p"], "double").to_pylist() == [1.5, None, 2.0]
    assert table.to_pandas()["p"].str["double"].astype(float).tolist()[::2] == [1.5, 2.0]
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "is `struct<boolean, long, double, string>`" in readme
    assert 'pyarrow.compute.struct_field(table["prediction"], "double")' in readme
    assert "A union of null and one type (`[\"null\", \"double\"]`) is a plain nullable" in readme
