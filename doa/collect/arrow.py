"""Avro types as Arrow types, and decoded records as Arrow rows.

=============================================  ==============================================
Avro                                           Arrow
=============================================  ==============================================
``null`` ``boolean`` ``int`` ``long``          null, bool, int32, int64
``float`` ``double`` ``bytes`` ``string``      float32, float64, binary, string
``["null", T]``                                T, nullable (every other type is not nullable)
other unions (``["long", "string"]``)          struct with one nullable field per branch,
                                               named by the branch's type; the value sits in
                                               its branch's field (Parquet has no unions)
record, array, map                             struct, list, map<string, T>
enum, fixed                                    string, fixed_size_binary
``timestamp-millis`` / ``-micros``             timestamp[ms] / [us], UTC
``local-timestamp-millis`` / ``-micros``       timestamp[ms] / [us], no time zone
``date``, ``time-millis``, ``time-micros``     date32, time32[ms], time64[us]
``decimal``, ``uuid``                          decimal128 (decimal256 beyond 38 digits), string
=============================================  ==============================================

A recursive record has no Arrow type: Parquet refuses it, JSON lines and CSV take it. The
types follow the schema, never the values read (a file's row groups are written as the stream
is read): ``doa.Prediction``'s ``prediction`` (``["null", "boolean", "long", "double",
"string"]``) is a struct even when a regressor wrote only doubles; take the branch with
``pyarrow.compute.struct_field(column, "double")`` (``doa dataset`` types it by its values).

Examples
--------
>>> schema = {"type": "record", "name": "R", "fields": [
...     {"name": "n", "type": "long"}, {"name": "tag", "type": ["null", "string"]},
...     {"name": "v", "type": ["long", "string"]}]}
>>> arrow_schema(schema)
n: int64 not null
tag: string
v: struct<long: int64, string: string> not null
  child 0, long: int64
  child 1, string: string
>>> converter(schema)({"n": 1, "tag": None, "v": "x"})
{'n': 1, 'tag': None, 'v': {'string': 'x'}}
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from doa.errors import DoaError
from doa.wire.schema import named_types, resolve_name, type_name

Convert = Callable[[Any], Any]
_PRIMITIVE = {"null": "null", "boolean": "bool_", "int": "int32", "long": "int64",
              "float": "float32", "double": "float64", "bytes": "binary", "string": "string"}
_LOGICAL: dict[str, tuple[str, tuple[Any, ...]]] = {
    "timestamp-millis": ("timestamp", ("ms", "UTC")),
    "timestamp-micros": ("timestamp", ("us", "UTC")),
    "local-timestamp-millis": ("timestamp", ("ms",)),
    "local-timestamp-micros": ("timestamp", ("us",)),
    "date": ("date32", ()), "time-millis": ("time32", ("ms",)),
    "time-micros": ("time64", ("us",)), "uuid": ("string", ()),
}


def pyarrow() -> Any:
    """The ``pyarrow`` module, or a one-line error naming the extra that installs it."""
    try:
        import pyarrow as pa
    except ImportError:
        raise DoaError("this needs pyarrow (Parquet, Arrow tables): pip install 'doa[data]'"
                       ) from None
    return pa


class _Walk:
    """Resolves named types while walking one schema; ``stack`` spots recursion."""

    def __init__(self, schema: Any) -> None:
        self.defs = named_types(schema)
        self.stack: list[str] = []

    def resolve(self, node: Any, ns: str | None) -> tuple[Any, str | None]:
        """A reference replaced by its definition (and the namespace it lives in)."""
        if isinstance(node, str) and node not in _PRIMITIVE:
            full = resolve_name(node, ns, self.defs)
            if full is None:
                raise DoaError(f"unknown Avro type {node!r}")
            if full in self.stack:
                raise DoaError(f"record {full!r} is recursive: it has no Arrow type (export it "
                               "as JSON lines or CSV)")
            definition = self.defs[full]
            return definition, type_name(definition, ns)[1]
        if isinstance(node, dict) and isinstance(node.get("type"), (dict, list)):
            return node["type"], ns
        if isinstance(node, dict) and node.get("type") in _PRIMITIVE and len(node) == 1:
            return node["type"], ns
        return node, ns


def arrow_type(schema: Any) -> Any:
    """The Arrow type of an Avro schema (see the module docstring)."""
    return _type(_Walk(schema), schema, None)


def arrow_schema(schema: Any, extra: Sequence[tuple[str, Any]] = ()) -> Any:
    """The Arrow schema of an Avro record schema, its fields in order, then ``extra``
    (``(name, arrow type)``, nullable)."""
    pa = pyarrow()
    walk = _Walk(schema)
    record, ns = walk.resolve(schema, None)
    full, ns = type_name(record, ns)
    walk.stack.append(full)
    fields = [_field(walk, f, ns) for f in record["fields"]]
    return pa.schema([*fields, *(pa.field(n, t) for n, t in extra)])


def _field(walk: _Walk, f: dict[str, Any], ns: str | None) -> Any:
    pa = pyarrow()
    return pa.field(f["name"], _type(walk, f["type"], ns), nullable=_nullable(f["type"]))


def _nullable(node: Any) -> bool:
    return node == "null" or (isinstance(node, list) and "null" in node)


def _type(walk: _Walk, node: Any, ns: str | None) -> Any:
    pa = pyarrow()
    node, ns = walk.resolve(node, ns)
    if isinstance(node, str):
        return getattr(pa, _PRIMITIVE[node])()
    if isinstance(node, list):
        real = [b for b in node if b != "null"]
        if len(real) == 1:
            return _type(walk, real[0], ns)
        if not real:
            return pa.null()
        return pa.struct([pa.field(branch_name(walk, b, ns), _type(walk, b, ns)) for b in real])
    logical = node.get("logicalType")
    if logical == "decimal":
        precision, scale = int(node["precision"]), int(node.get("scale", 0))
        return (pa.decimal128 if precision <= 38 else pa.decimal256)(precision, scale)
    if logical in _LOGICAL:
        factory, args = _LOGICAL[logical]
        return getattr(pa, factory)(*args)
    kind = node["type"]
    if kind in ("record", "error"):
        full, inner = type_name(node, ns)
        walk.stack.append(full)
        try:
            return pa.struct([_field(walk, f, inner) for f in node["fields"]])
        finally:
            walk.stack.pop()
    if kind == "array":
        return pa.list_(_type(walk, node["items"], ns))
    if kind == "map":
        return pa.map_(pa.string(), _type(walk, node["values"], ns))
    if kind == "enum":
        return pa.string()
    if kind == "fixed":
        return pa.binary(int(node["size"]))
    return _type(walk, kind, ns)  # {"type": "long", "logicalType": <unknown>} and the like


def branch_name(walk: _Walk, branch: Any, ns: str | None) -> str:
    """The struct field of a union branch: its type's name (a named type's short name)."""
    node, _ = walk.resolve(branch, ns)
    if isinstance(node, str):
        return node
    if node.get("logicalType") in _LOGICAL or node.get("logicalType") == "decimal":
        return str(node["logicalType"])
    if node.get("type") in ("record", "error", "enum", "fixed"):
        return str(node["name"]).rpartition(".")[2]
    return str(node["type"])


# -- values -----------------------------------------------------------------------------------

def converter(schema: Any) -> Convert | None:
    """A function making a decoded record Arrow-ready (union values into their branch's
    field, UUIDs into text), or None when records need nothing."""
    return _conv(_Walk(schema), schema, None)


def _conv(walk: _Walk, node: Any, ns: str | None) -> Convert | None:
    node, ns = walk.resolve(node, ns)
    if isinstance(node, str):
        return None
    if isinstance(node, list):
        return _union(walk, node, ns)
    if node.get("logicalType") == "uuid":
        return str
    kind = node.get("type")
    if kind in ("record", "error"):
        full, inner = type_name(node, ns)
        walk.stack.append(full)
        try:
            parts = [(f["name"], _conv(walk, f["type"], inner)) for f in node["fields"]]
        finally:
            walk.stack.pop()
        todo = [(name, c) for name, c in parts if c is not None]
        if not todo:
            return None

        def record(value: Any) -> Any:
            if value is None:
                return None
            out = dict(value)
            for name, c in todo:
                out[name] = c(value[name])
            return out
        return record
    if kind == "array":
        item = _conv(walk, node["items"], ns)
        return None if item is None else (lambda v: None if v is None else [item(x) for x in v])
    if kind == "map":
        val = _conv(walk, node["values"], ns)
        return None if val is None else (
            lambda v: None if v is None else {k: val(x) for k, x in v.items()})
    return None


def _union(walk: _Walk, branches: list[Any], ns: str | None) -> Convert | None:
    real = [b for b in branches if b != "null"]
    if len(real) <= 1:
        inner = _conv(walk, real[0], ns) if real else None
        return None if inner is None else (lambda v: None if v is None else inner(v))
    names = [branch_name(walk, b, ns) for b in real]
    kinds = [_kind(walk, b, ns) for b in real]
    convs = [_conv(walk, b, ns) for b in real]

    def union(value: Any) -> Any:
        if value is None:
            return None
        i = _pick(kinds, value)
        c = convs[i]
        return {names[i]: value if c is None else c(value)}
    return union


def _kind(walk: _Walk, branch: Any, ns: str | None) -> tuple[Any, ...]:
    """What Python values a branch takes, for :func:`_pick`: (classes, enum symbols, fields)."""
    node, ns = walk.resolve(branch, ns)
    if isinstance(node, str):
        return ({"null": (type(None),), "boolean": (bool,), "int": (int,), "long": (int,),
                 "float": (float, int), "double": (float, int), "bytes": (bytes,),
                 "string": (str,)}[node], None, None)
    logical = node.get("logicalType")
    py = {"timestamp-millis": datetime.datetime, "timestamp-micros": datetime.datetime,
          "local-timestamp-millis": datetime.datetime,
          "local-timestamp-micros": datetime.datetime, "date": datetime.date,
          "time-millis": datetime.time, "time-micros": datetime.time,
          "decimal": decimal.Decimal, "uuid": uuid.UUID}.get(logical or "")
    if py is not None:
        return ((py,), None, None)
    kind = node.get("type")
    if kind in _PRIMITIVE:  # {"type": "long", "logicalType": <one fastavro does not convert>}
        return _kind(walk, kind, ns)
    if kind in ("record", "error"):
        return ((dict,), None, frozenset(f["name"] for f in node["fields"]))
    if kind == "enum":
        return ((str,), frozenset(node["symbols"]), None)
    return ({"array": (list,), "map": (dict,), "fixed": (bytes,)}.get(kind, (object,)),
            None, None)


def _pick(kinds: list[tuple[Any, ...]], value: Any) -> int:
    """The first branch that takes ``value``, as fastavro's writer picks one."""
    for exact in (True, False):
        for i, (classes, symbols, fields) in enumerate(kinds):
            if exact and type(value) is not classes[0]:
                continue
            if not exact and (type(value) is bool or not isinstance(value, classes)):
                continue
            if symbols is not None and value not in symbols:
                continue
            if fields is not None and not set(value) <= fields:
                continue
            return i
    raise DoaError(f"a value of type {type(value).__name__} fits no branch of its union")
