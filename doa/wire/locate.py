"""Which field a malformed Avro body goes wrong in: the slow path of a decode error.

The generated reader (:mod:`doa.wire.fastcheck`) checks a body in one pass and says what is
wrong and at which byte, not in which field: it keeps no path, to stay fast. When it refuses a
body, :func:`where` walks the same bytes again with the schema, field by field, keeping the
path, and returns the path of the value in which the bytes stop being one well-formed value
(cut short, a union or enum index out of range, a varint too long, a boolean not 0 or 1, a
string not UTF-8, a negative length). It runs only for bodies already refused, so it favours
clarity over speed; ``None`` when the walk finds nothing (the problem is after the value, or
one only the generated reader checks, such as a block's byte size).

Examples
--------
>>> schema = {"type": "record", "name": "reading", "fields": [
...     {"name": "sensor_id", "type": "string"},
...     {"name": "unit", "type": ["null", "string"]},
...     {"name": "tags", "type": {"type": "array", "items": "string"}}]}
>>> where(schema, b"\\x04ab\\x0e", 0)  # union index 7 of 2 branches
'reading.unit'
>>> where(schema, b"\\x04ab\\x00\\x02\\x06ab", 0)  # the array's first string is cut short
'reading.tags[0]'
>>> where(schema, b"\\x04ab\\x00\\x00", 0) is None
True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doa.wire.schema import PRIMITIVES, named_types, resolve_name, type_name

_FIXED_SIZE = {"float": 4, "double": 8}


class _Bad(Exception):
    """The bytes stop being a well-formed value here (the walk's path says where)."""


def where(schema: Any, data: bytes, start: int) -> str | None:
    """The path of the value of ``schema`` (parsed JSON) in which ``data[start:]`` goes wrong.

    Paths read as the encoder's error messages do: ``record.field``, ``[i]`` for an array
    item, ``['key']`` for a map value.
    """
    walk = _Walk(data, named_types(schema))
    named = isinstance(schema, Mapping) and "name" in schema
    root = type_name(schema, None)[0].rsplit(".", 1)[-1] if named else "value"
    walk.path = [root]
    try:
        walk.value(schema, None, start)
    except (_Bad, IndexError, UnicodeDecodeError, RecursionError):
        return "".join(walk.path)
    return None


class _Walk:
    def __init__(self, data: bytes, defs: dict[str, Any]) -> None:
        self.data = data
        self.defs = defs
        self.path: list[str] = []

    def long(self, p: int) -> tuple[int, int]:
        d, shift, n = self.data, 0, 0
        for i in range(10):
            b = d[p + i]  # IndexError: cut short
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return (n >> 1) ^ -(n & 1), p + i + 1
        raise _Bad("varint over 10 bytes")

    def length(self, p: int) -> tuple[int, int]:
        n, p = self.long(p)
        if n < 0 or p + n > len(self.data):
            raise _Bad("length")
        return n, p

    def value(self, s: Any, ns: str | None, p: int) -> int:
        """Walk one value of type ``s`` at byte ``p``; return where it ends."""
        if isinstance(s, list):
            i, p = self.long(p)
            if not 0 <= i < len(s):
                raise _Bad("union index")
            return self.value(s[i], ns, p)
        if isinstance(s, str):
            if s in PRIMITIVES:
                return self.primitive(s, p)
            full = resolve_name(s, ns, self.defs)
            if full is None:
                raise _Bad(f"unknown type {s}")
            return self.value(self.defs[full], ns, p)
        kind = s["type"]
        if kind in PRIMITIVES or isinstance(kind, (list, dict)):
            return self.value(kind, ns, p)  # a primitive with attributes (a logical type)
        if kind == "record":
            full, inner = type_name(s, ns)
            for f in s["fields"]:
                self.path.append(f".{f['name']}")
                p = self.value(f["type"], inner, p)
                self.path.pop()
            return p
        if kind == "enum":
            i, p = self.long(p)
            if not 0 <= i < len(s["symbols"]):
                raise _Bad("enum index")
            return p
        if kind == "fixed":
            if p + s["size"] > len(self.data):
                raise _Bad("fixed")
            return p + int(s["size"])
        if kind in ("array", "map"):
            return self.blocks(s, ns, p)
        raise _Bad(f"unknown type {kind}")

    def blocks(self, s: Mapping[str, Any], ns: str | None, p: int) -> int:
        items = s["items"] if s["type"] == "array" else s["values"]
        i = 0
        while True:
            n, p = self.long(p)
            if n == 0:
                return p
            if n < 0:
                n = -n
                _, p = self.long(p)  # the block's byte size
            for _ in range(n):
                before = p
                if s["type"] == "array":
                    self.path.append(f"[{i}]")
                else:
                    k, p = self.length(p)
                    self.path.append(f"[{self.data[p:p + k].decode()!r}]")
                    p += k
                p = self.value(items, ns, p)
                self.path.pop()
                i += 1
                if p == before:  # items of no bytes (nulls): the rest are alike, whatever n says
                    i += n - 1
                    break

    def primitive(self, kind: str, p: int) -> int:
        if kind == "null":
            return p
        if kind == "boolean":
            if self.data[p] > 1:
                raise _Bad("boolean")
            return p + 1
        if kind in ("int", "long"):
            n, end = self.long(p)
            if kind == "int" and not -(2**31) <= n < 2**31:
                raise _Bad("int range")
            return end
        if kind in _FIXED_SIZE:
            if p + _FIXED_SIZE[kind] > len(self.data):
                raise _Bad("cut short")
            return p + _FIXED_SIZE[kind]
        n, p = self.length(p)
        if kind == "string":
            self.data[p:p + n].decode()
        return p + n
