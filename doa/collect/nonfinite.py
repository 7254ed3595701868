"""NaN and the infinities in doa's JSON: the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``.

JSON has no number for them (RFC 8259), and orjson writes each as ``null`` without a word,
so a non-nullable double that holds a NaN would read back as a missing value. doa writes them
as Avro's Java ``JsonEncoder`` does (Jackson's default, ``QUOTE_NON_NUMERIC_NUMBERS``): the
JSON strings ``"NaN"``, ``"Infinity"`` and ``"-Infinity"``; Avro's Java and C# ``JsonDecoder``
(AVRO-2032) and fastavro (a float or double field's default) read them back.

Writing needs no schema: only a float (an Avro float or double) is written so, a string that
holds ``"NaN"`` stays that string. Reading is directed by the schema: :func:`restorer` turns
the three strings back into floats where the schema has a float or double (in a union, an
array, a map or a nested record too), and leaves them strings everywhere else. In a union with
both a string (or an enum with that symbol) and a float or double branch the string wins: the
JSON does not say which branch it was.

Examples
--------
>>> dumps({"x": float("nan"), "s": "NaN", "y": [1.5, float("-inf")], "n": None})
b'{"x":"NaN","s":"NaN","y":[1.5,"-Infinity"],"n":null}'
>>> restore = restorer({"type": "record", "name": "R", "fields": [
...     {"name": "x", "type": "double"}, {"name": "s", "type": "string"},
...     {"name": "y", "type": {"type": "array", "items": ["null", "float"]}}]})
>>> restore({"x": "NaN", "s": "NaN", "y": ["Infinity", None, 2.0]})
{'x': nan, 's': 'NaN', 'y': [inf, None, 2.0]}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from doa.wire.schema import named_types, resolve_name, type_name

__all__ = ["FORMS", "dumps", "has_form", "restorer"]

FORMS: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_FLOATS = ("float", "double")
_PLAIN = frozenset([str, int, bool, type(None)])  # what cannot hold a float
_STRINGS = ("string", "bytes")  # a JSON string is the value of either (bytes: hex, in doa)


def _form(value: float) -> str:
    """The string of the non-finite ``value``."""
    return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")


def dumps(value: Any, default: Callable[[Any], Any] | None = None, option: int = 0) -> bytes:
    """``orjson.dumps(value, default=default, option=option)``, a non-finite float written as
    its string (see the module docstring).

    orjson writes a non-finite float as ``null``, so only output with a ``null`` in it is
    looked at again (a record without nulls costs one ``in`` more than orjson alone).

    >>> dumps([float("inf"), None, "null"])
    b'["Infinity",null,"null"]'
    """
    out = orjson.dumps(value, default=default, option=option)
    if b"null" in out and _nonfinite(value):
        out = orjson.dumps(_written(value), default=default, option=option)
    return out


def _nonfinite(value: Any) -> bool:
    """Whether ``value`` is, or holds in its dicts, lists and tuples, a non-finite float (a
    loop, not a recursion: it runs for every record with a null)."""
    stack = [value]
    while stack:
        v = stack.pop()
        cls = v.__class__
        if cls is dict:
            stack.extend(v.values())
        elif cls is list or cls is tuple:
            stack.extend(v)
        elif cls in _PLAIN:
            continue
        elif isinstance(v, float) and v - v != 0.0:  # NaN - NaN and inf - inf are NaN
            return True
        elif isinstance(v, (dict, list, tuple)):  # a subclass
            stack.extend(v.values() if isinstance(v, dict) else v)
    return False


def _written(value: Any) -> Any:
    """``value`` with each non-finite float replaced by its string."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _form(value)
    if isinstance(value, dict):
        return {k: _written(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_written(v) for v in value]
    return value


def has_form(text: str | bytes) -> bool:
    """Whether the JSON ``text`` may hold one of the strings (a cheap test before
    :func:`restorer`'s walk).

    >>> has_form('{"x": "-Infinity"}'), has_form('{"x": 1.5}')
    (True, False)
    """
    if isinstance(text, bytes):
        return b'"NaN"' in text or b'Infinity"' in text
    return '"NaN"' in text or 'Infinity"' in text


def restorer(schema: Any) -> Callable[[Any], Any]:
    """A function taking a value of ``schema`` as read from JSON to the value with each
    ``"NaN"``, ``"Infinity"`` and ``"-Infinity"`` where the schema has a float or double turned
    into that float; the identity when the schema has no float or double.

    Parameters
    ----------
    schema : the self-contained schema, as JSON data (named types defined inside it)

    Returns
    -------
    callable
        ``restore(value)``: a new value where something was restored, else ``value`` itself.
        A value that does not fit the schema is left as it is, for the codec to name.

    Examples
    --------
    >>> restore = restorer({"type": "record", "name": "P", "namespace": "geo", "fields": [
    ...     {"name": "at", "type": ["null", {"type": "record", "name": "Q", "fields": [
    ...         {"name": "v", "type": {"type": "map", "values": "double"}}]}]},
    ...     {"name": "next", "type": ["null", "geo.Q"]},
    ...     {"name": "tag", "type": ["null", "string", "double"]}]})
    >>> restore({"at": {"v": {"a": "-Infinity"}}, "next": None, "tag": "NaN"})
    {'at': {'v': {'a': -inf}}, 'next': None, 'tag': 'NaN'}
    >>> restorer({"type": "record", "name": "S", "fields": [{"name": "s", "type": "string"}]})(
    ...     {"s": "NaN"})
    {'s': 'NaN'}
    """
    walk = _Restore(schema)
    if not walk.has_float(schema, None, set()):
        return _same
    return lambda value: walk.value(schema, value, None)


def _same(value: Any) -> Any:
    return value


class _Restore:
    """The schema-directed walk of :func:`restorer`."""

    def __init__(self, schema: Any) -> None:
        self.defs = named_types(schema)

    def named(self, name: str, ns: str | None) -> Any:
        """The definition ``name`` denotes inside ``ns`` (None: not one of the schema's)."""
        full = resolve_name(name, ns, self.defs)
        return None if full is None else self.defs[full]

    def has_float(self, schema: Any, ns: str | None, seen: set[str]) -> bool:
        """Whether a float or double can be reached from ``schema``."""
        if isinstance(schema, list):
            return any(self.has_float(b, ns, seen) for b in schema)
        if isinstance(schema, str):
            if schema in _FLOATS:
                return True
            full = resolve_name(schema, ns, self.defs)
            if full is None or full in seen:
                return False
            seen.add(full)
            return self.has_float(self.defs[full], ns, seen)
        if not isinstance(schema, dict):
            return False
        kind = schema.get("type")
        if kind in ("record", "error"):
            full, inner = type_name(schema, ns)
            seen.add(full)
            return any(self.has_float(f.get("type"), inner, seen)
                       for f in schema.get("fields", []))
        if kind == "array":
            return self.has_float(schema.get("items"), ns, seen)
        if kind == "map":
            return self.has_float(schema.get("values"), ns, seen)
        if kind in ("enum", "fixed"):
            return False
        return self.has_float(kind, ns, seen)  # {"type": "double", ...}, logical types too

    def value(self, schema: Any, value: Any, ns: str | None) -> Any:
        """``value`` of ``schema`` (inside namespace ``ns``), restored."""
        if isinstance(schema, list):
            return self.union(schema, value, ns)
        if isinstance(schema, str):
            if schema in _FLOATS:
                return FORMS.get(value, value) if isinstance(value, str) else value
            definition = self.named(schema, ns)
            return value if definition is None else self.value(definition, value, ns)
        if not isinstance(schema, dict):
            return value
        kind = schema.get("type")
        if kind in ("record", "error"):
            if not isinstance(value, dict):
                return value
            inner = type_name(schema, ns)[1]
            return {**value, **{f["name"]: self.value(f.get("type"), value[f["name"]], inner)
                                for f in schema.get("fields", []) if f["name"] in value}}
        if kind == "array":
            return value if not isinstance(value, list) else \
                [self.value(schema.get("items"), v, ns) for v in value]
        if kind == "map":
            return value if not isinstance(value, dict) else \
                {k: self.value(schema.get("values"), v, ns) for k, v in value.items()}
        if kind in ("enum", "fixed"):
            return value
        return self.value(kind, value, ns)

    def union(self, branches: list[Any], value: Any, ns: str | None) -> Any:
        """``value`` of the union ``branches``: restored by the branch it must be of."""
        if value is None or isinstance(value, (bool, int, float)):
            return value
        kinds = [self.kind(b, ns) for b in branches]
        if isinstance(value, str):
            if value not in FORMS or any(_takes_string(k, d, value) for k, d in kinds):
                return value
            return FORMS[value] if any(k in _FLOATS for k, _ in kinds) else value
        for branch, (kind, definition) in zip(branches, kinds, strict=True):
            if _fits(kind, definition, value):
                return self.value(branch, value, ns)
        return value

    def kind(self, branch: Any, ns: str | None) -> tuple[str, Any]:
        """What ``branch`` is (a primitive's name, record, array, map, enum, fixed, or ``?``)
        and its definition, named types resolved."""
        while True:
            if isinstance(branch, str):
                if branch in ("null", "boolean", "int", "long", *_FLOATS, *_STRINGS):
                    return branch, branch
                definition = self.named(branch, ns)
                if definition is None:
                    return "?", branch
                branch = definition
            elif isinstance(branch, dict):
                kind = branch.get("type")
                if kind in ("record", "error", "array", "map", "enum", "fixed"):
                    return str(kind), branch
                branch = kind
            else:
                return "?", branch


def _takes_string(kind: str, definition: Any, value: str) -> bool:
    """Whether a union branch of ``kind`` (``definition``) takes the JSON string ``value`` as
    it is: a string, bytes or fixed (hex in doa's JSON), or an enum with that symbol."""
    if kind in _STRINGS or kind == "fixed":
        return True
    return kind == "enum" and value in definition.get("symbols", ())


def _fits(kind: str, definition: Any, value: Any) -> bool:
    """Whether a dict or list ``value`` is of a union branch of ``kind`` (``definition``): a
    list of an array, a dict of a map, or of a record whose fields include all its keys."""
    if isinstance(value, list):
        return kind == "array"
    if not isinstance(value, dict):
        return False
    if kind == "map":
        return True
    if kind in ("record", "error"):
        return set(value) <= {f["name"] for f in definition.get("fields", [])}
    return False
