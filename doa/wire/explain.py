"""Find the first place where a value does not match an Avro schema, and say it plainly.

This is the slow path of encoding: it runs only after the fast writer refused a record, so it
favours clear messages over speed. It follows the Avro specification's type rules, accepting
the Python values fastavro can write (ints for doubles, datetimes for timestamp logical types).

:func:`unreadable` says, the same way, where data written with one schema cannot be read with
another (the specification's "Schema Resolution"): the field, the writer's type and the
reader's. A decode error names it, and so does ``doa deploy`` for a version that a node still
running cannot read.

Examples
--------
>>> schema = {"type": "record", "name": "reading", "fields": [
...     {"name": "tags", "type": {"type": "array", "items": "string"}}]}
>>> explain(schema, {"tags": ["a", 3]}, "reading")
('reading.tags[1]', 'string', 3)
>>> explain(schema, {"tags": ["a"]}, "reading") is None
True
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from doa.errors import MISSING, UNKNOWN_FIELD
from doa.wire.schema import PRIMITIVES, named_types, resolve_name, type_name

_RANGES = {"int": 2**31, "long": 2**63}
LOGICAL_PY_TYPES = {  # the Python values fastavro converts for each logical type
    "timestamp-millis": (datetime.datetime,),
    "timestamp-micros": (datetime.datetime,),
    "local-timestamp-millis": (datetime.datetime,),
    "local-timestamp-micros": (datetime.datetime,),
    "date": (datetime.date,),
    "time-millis": (datetime.time,),
    "time-micros": (datetime.time,),
    "decimal": (decimal.Decimal,),
    "uuid": (uuid.UUID,),
}

Found = tuple[str, str, object]
Unreadable = tuple[str, str]  # (field path, why the reader cannot take what the writer wrote)
ANY: object = object()  # "any value the writer's schema allows" (see unreadable)
_PROMOTIONS = {"int": ("long", "float", "double"), "long": ("float", "double"),
               "float": ("double",), "string": ("bytes",), "bytes": ("string",)}


def explain(schema: Any, value: object, path: str, defs: dict[str, Any] | None = None
            ) -> Found | None:
    """Return ``(field path, expected type, value)`` of the first mismatch, or None.

    ``defs`` may add named types (by full name) that ``schema`` references but does not define.
    """
    # Every definition up front: a named type may be defined where the value does not go (an
    # unused union branch, an empty array) and referenced further on.
    known = {**(defs or {}), **named_types(schema)}
    return _explain(schema, value, path, known, None)


def describe(schema: Any) -> str:
    """A short human name for a schema: ``double``, ``one of [null, double]``, ``Location``."""
    if isinstance(schema, str):
        return schema
    if isinstance(schema, list):
        return "one of [" + ", ".join(describe(s) for s in schema) + "]"
    kind = schema.get("type")
    if kind in ("record", "error", "fixed"):
        return str(schema.get("name"))
    if kind == "enum":
        return f"one of the symbols {schema.get('symbols')}"
    if kind == "array":
        return f"array of {describe(schema['items'])}"
    if kind == "map":
        return f"map of {describe(schema['values'])}"
    return describe(kind)


def _explain(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
             ) -> Found | None:
    if isinstance(schema, list):
        return _union(schema, value, path, defs, ns)
    if isinstance(schema, str):
        return _named(schema, value, path, defs, ns)
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical in LOGICAL_PY_TYPES and isinstance(value, LOGICAL_PY_TYPES[logical]):
        return None
    if kind in ("record", "error", "enum", "fixed"):
        ns = type_name(schema, ns)[1]
    check = _COMPLEX.get(kind) if isinstance(kind, str) else None
    if check is None:  # {"type": "long"}, {"type": {"type": "array", ...}} and the like
        return _explain(kind, value, path, defs, ns)
    return check(schema, value, path, defs, ns)


def _union(schema: list[Any], value: object, path: str, defs: dict[str, Any], ns: str | None
           ) -> Found | None:
    if any(_explain(branch, value, path, defs, ns) is None for branch in schema):
        return None
    # A single non-null branch explains better from inside (e.g. a nested record).
    real = [b for b in schema if b != "null"]
    if value is not None and len(real) == 1 and _is_container(real[0], defs, ns):
        return _explain(real[0], value, path, defs, ns)
    return (path, describe(schema), value)


def _named(schema: str, value: object, path: str, defs: dict[str, Any], ns: str | None
           ) -> Found | None:
    """A primitive type's name, or a reference to a named type."""
    if schema in PRIMITIVES:
        return None if _primitive_ok(schema, value) else (path, schema, value)
    name = resolve_name(schema, ns, defs)
    if name is None:  # the schema parsed, so this is a caller's mistake
        return (path, f"{schema} (an unknown type)", value)
    return _explain(defs[name], value, path, defs, ns)


def _enum(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
          ) -> Found | None:
    ok = isinstance(value, str) and value in schema["symbols"]
    return None if ok else (path, describe(schema), value)


def _fixed(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
           ) -> Found | None:
    ok = isinstance(value, (bytes, bytearray)) and len(value) == schema["size"]
    return None if ok else (path, f"fixed {schema['name']} of {schema['size']} bytes", value)


def _array(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
           ) -> Found | None:
    if not isinstance(value, (list, tuple)):
        return (path, describe(schema), value)
    return _first(_explain(schema["items"], item, f"{path}[{i}]", defs, ns)
                  for i, item in enumerate(value))


def _map(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
         ) -> Found | None:
    if not isinstance(value, Mapping):
        return (path, describe(schema), value)
    return _first(_explain(schema["values"], item, f"{path}[{k!r}]", defs, ns)
                  if isinstance(k, str) else (f"{path}[{k!r}]", "string key", k)
                  for k, item in value.items())


def _first(found: Iterable[Found | None]) -> Found | None:
    """The first mismatch of ``found`` (a lazy iterable: the checks stop there), or None."""
    return next((f for f in found if f), None)


def _record(schema: Any, value: object, path: str, defs: dict[str, Any], ns: str | None
            ) -> Found | None:
    if not isinstance(value, Mapping):
        return (path, f"record {schema['name']}", value)
    names = set()
    for f in schema["fields"]:
        names.add(f["name"])
        sub = f"{path}.{f['name']}"
        if f["name"] not in value:
            if "default" in f:
                continue
            return (sub, describe(f["type"]) + _typo(f["name"], schema, value), MISSING)
        found = _explain(f["type"], value[f["name"]], sub, defs, ns)
        if found:
            return found
    for k in value:
        if k not in names:
            known = ", ".join(sorted(names))
            return (f"{path}.{k}", f"{UNKNOWN_FIELD} (record {schema['name']} has: {known})",
                    value[k])
    return None


def _typo(name: str, schema: Any, value: Mapping[Any, object]) -> str:
    """For a missing field ``name``: the record's key closest to it that the schema does not
    name (a misspelling), as a note; "" when there is none.

    >>> r = {"type": "record", "name": "R", "fields": [{"name": "temperature", "type": "double"}]}
    >>> _typo("temperature", r, {"temprature": 21.5})
    " (the record has 'temprature', which the schema does not: a typo?)"
    >>> _typo("temperature", r, {"vibration": 0.1})
    ''
    """
    import difflib

    names = {f["name"] for f in schema["fields"]}
    extra = [k for k in value if isinstance(k, str) and k not in names]
    close = difflib.get_close_matches(name, extra, n=1, cutoff=0.6)
    return f" (the record has {close[0]!r}, which the schema does not: a typo?)" if close else ""


_COMPLEX: dict[str, Callable[[Any, object, str, dict[str, Any], str | None], Found | None]] = {
    "record": _record, "error": _record, "enum": _enum, "fixed": _fixed, "array": _array,
    "map": _map,
}


def _is_container(schema: Any, defs: dict[str, Any], ns: str | None) -> bool:
    if isinstance(schema, str):
        schema = defs.get(resolve_name(schema, ns, defs) or "", schema)
    return isinstance(schema, dict) and schema.get("type") in ("record", "array", "map")


def _primitive_ok(kind: str, value: object) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind in _RANGES:
        if isinstance(value, bool) or not _is_integral(value):
            return False
        bound = _RANGES[kind]
        return bool(-bound <= int(value) < bound)  # type: ignore[call-overload]
    if kind in ("float", "double"):
        if isinstance(value, bool):
            return False
        if _is_integral(value):
            try:
                float(value)  # type: ignore[arg-type]
            except OverflowError:  # an int beyond the largest double
                return False
            return True
        return _is_real(value)
    if kind == "string":
        return isinstance(value, str)
    if kind == "bytes":
        return isinstance(value, (bytes, bytearray, memoryview))
    return True  # unknown names were rejected when the schema was parsed


def _is_integral(value: object) -> bool:
    return hasattr(value, "__index__") and not isinstance(value, (bytes, str, float))


def _is_real(value: object) -> bool:
    return isinstance(value, float) or (hasattr(value, "__float__") and not isinstance(
        value, (bytes, str)) and type(value).__module__ == "numpy")


def unreadable(writer: Any, reader: Any, path: str, value: object = ANY) -> list[Unreadable]:
    """Where data written with ``writer`` cannot be read with ``reader`` (Avro resolution):
    ``(field path, why)`` for each place, ``why`` naming the writer's type and the reader's.

    With ``value`` (a record as decoded with ``writer``), only the places that value reaches:
    why that record did not resolve. Without it, every place some value could fail.

    Examples
    --------
    >>> old = {"type": "record", "name": "Ride", "fields": [{"name": "hour", "type": "int"}]}
    >>> new = {"type": "record", "name": "Ride", "fields": [{"name": "hour", "type": "double"},
    ...                                                     {"name": "zone", "type": "string"}]}
    >>> unreadable(new, old, "Ride")
    [('Ride.hour', "the writer's double cannot be read as the reader's int")]
    >>> unreadable(old, new, "Ride")  # int is promoted to double; zone has no default
    [('Ride.zone', "the writer's Ride has no field zone and the reader's has no default")]
    >>> def tip(kind):
    ...     return {"type": "record", "name": "R", "fields": [{"name": "v", "type": kind}]}
    >>> wide, narrow = tip(["null", "long"]), tip(["null", "int"])
    >>> unreadable(wide, narrow, "R", {"v": None}), unreadable(wide, narrow, "R", {"v": 3})
    ([], [('R.v', "the writer's long cannot be read as the reader's one of [null, int]")])
    """
    walk = _Resolution(named_types(writer), named_types(reader))
    walk.compare((writer, None), (reader, None), path, value)
    return list(dict.fromkeys(walk.found))


_Ref = tuple[Any, "str | None"]  # a schema and the namespace it is read in


class _Resolution:
    """One walk of a writer's and a reader's schema side by side."""

    def __init__(self, wdefs: dict[str, Any], rdefs: dict[str, Any]) -> None:
        self.defs = (wdefs, rdefs)
        self.found: list[Unreadable] = []
        self.seen: set[tuple[int, int]] = set()

    def plain(self, ref: _Ref, side: int) -> _Ref:
        """A reference or a wrapped type (``{"type": "long", ...}``) as what it denotes."""
        schema, ns = ref
        while True:
            if isinstance(schema, str) and schema not in PRIMITIVES:
                full = resolve_name(schema, ns, self.defs[side])
                if full is None:
                    return schema, ns
                schema = self.defs[side][full]
            elif not isinstance(schema, dict):
                return schema, ns
            elif schema.get("type") in PRIMITIVES or not isinstance(schema.get("type"), str):
                schema = schema["type"]  # {"type": "long", "logicalType": ...}, {"type": [...]}
            elif schema.get("type") in ("record", "error", "enum", "fixed"):
                return schema, type_name(schema, ns)[1]
            else:
                return schema, ns

    def compare(self, writer: _Ref, reader: _Ref, path: str, value: object) -> None:
        (w, wns), (r, rns) = writer, reader = self.plain(writer, 0), self.plain(reader, 1)
        if isinstance(w, list):  # the branch written (with a value: the one that value fits)
            fits = [b for b in w if value is ANY or _explain(b, value, path,
                                                             self.defs[0], wns) is None]
            for branch in fits[:1] if value is not ANY else fits:
                self.compare((branch, wns), reader, path, value)
            return
        if isinstance(r, list):  # the reader's first branch that takes the writer's type
            kinds = [self.plain((b, rns), 1) for b in r]
            take = [b for b in kinds if _kind(b[0]) == _kind(w) and _same_name(w, b[0])] or [
                b for b in kinds if _kind(b[0]) in _PROMOTIONS.get(_kind(w), ())]
            if take:
                self.compare(writer, take[0], path, value)
            else:
                self.mismatch(path, w, r)
            return
        wk, rk = _kind(w), _kind(r)
        if (wk != rk and rk not in _PROMOTIONS.get(wk, ())) or not _same_name(w, r):
            self.mismatch(path, w, r)
        elif wk in ("record", "error"):
            self.record(writer, reader, path, value)
        elif wk == "enum":
            symbols = [value] if value is not ANY else w["symbols"]
            lost = [s for s in symbols if s not in r["symbols"]]
            if lost and "default" not in r:
                self.found.append((path, f"the writer's symbol {lost[0]!r} is not one of the "
                                         f"reader's {r['name']} {r['symbols']}"))
        elif wk == "fixed" and w.get("size") != r.get("size"):
            self.found.append((path, f"the writer's {w['size']} bytes cannot be read as the "
                                     f"reader's fixed {r['name']} of {r['size']}"))
        elif wk in ("array", "map"):
            inner = "items" if wk == "array" else "values"
            items: list[object] = [ANY]
            if isinstance(value, Mapping):
                items = list(value.values())
            elif isinstance(value, (list, tuple)):
                items = list(value)
            before = len(self.found)
            for item in items:
                self.compare((w[inner], wns), (r[inner], rns), f"{path}[]", item)
                if len(self.found) > before:
                    break

    def record(self, writer: _Ref, reader: _Ref, path: str, value: object) -> None:
        (w, wns), (r, rns) = writer, reader
        if value is ANY and (id(w), id(r)) in self.seen:  # a recursive type, compared
            return
        self.seen.add((id(w), id(r)))
        written = {f["name"]: f for f in w.get("fields", [])}
        for f in r.get("fields", []):
            wf = next((written[n] for n in (f["name"], *f.get("aliases", ())) if n in written),
                      None)
            if wf is None:
                if "default" not in f:
                    self.found.append((f"{path}.{f['name']}", f"the writer's {w['name']} has "
                                       f"no field {f['name']} and the reader's has no default"))
                continue
            sub = value.get(wf["name"], ANY) if isinstance(value, Mapping) else ANY
            self.compare((wf["type"], wns), (f["type"], rns), f"{path}.{f['name']}", sub)

    def mismatch(self, path: str, writer: Any, reader: Any) -> None:
        self.found.append((path, f"the writer's {describe(writer)} cannot be read as the "
                                 f"reader's {describe(reader)}"))


def _kind(schema: Any) -> str:
    """``int``, ``record``, ``union``...: what resolution compares first."""
    if isinstance(schema, list):
        return "union"
    if isinstance(schema, dict):
        return str(schema.get("type"))
    return str(schema)


def _same_name(writer: Any, reader: Any) -> bool:
    """Named types resolve by unqualified name (or one of the reader's aliases)."""
    if not (isinstance(writer, dict) and isinstance(reader, dict)) or _kind(writer) not in (
            "record", "error", "enum", "fixed"):
        return True
    short = str(writer.get("name", "")).rpartition(".")[2]
    names = {str(reader.get("name", "")), *map(str, reader.get("aliases", ()))}
    return short in {n.rpartition(".")[2] for n in names}
