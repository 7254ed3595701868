"""Find the first place where a value does not match an Avro schema, and say it plainly.

This is the slow path of encoding: it runs only after the fast writer refused a record, so it
favours clear messages over speed. It follows the Avro specification's type rules, accepting
the Python values fastavro can write (ints for doubles, datetimes for timestamp logical types).

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
