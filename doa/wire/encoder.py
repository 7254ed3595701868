"""The generated encoder: the Avro binary body of a record, written by code compiled per schema.

fastavro's writer walks the parsed schema for every value it writes, and the codec's check
walks the record once more before it. The function generated here from a schema's structure
does both in one pass of straight-line code: it checks each value's exact Python type (and
range) as the check does, and writes the bytes fastavro would write. Zig-zag varints come
from a table for the small ones, consecutive float and double fields (and an array of them)
go through one ``struct`` pack, as does a map of numbers whose set of keys was seen before
(feature names repeat from record to record; other maps cache their keys' encodings), and the
parts are joined once.

It writes only what it is sure of. For any value it does not handle exactly, it returns
``None`` and the caller takes the existing path (the check, fastavro, the explainer), which
writes the same bytes or raises the same error as before. ``None`` comes back for: a value of
another class than the plain one (``bytearray``, a ``float`` subclass such as ``numpy.float64``,
a ``Mapping`` that is not a ``dict`` (an input event, ``doa.events.Event``, passed on as the
whole record is fine), a bool where a number goes), anything out of range or
not encodable (an int beyond the type, a float beyond float32, a string with lone
surrogates), a missing field without a default, a key the record's schema does not name (the
strict writer refuses it), a default that is not a value of its type as it stands (``"NaN"``
for a double, a string for bytes), logical types, recursive types, and unions other than
``null`` with one type or all-primitive unions.

Examples
--------
>>> encode = compile_encoder({"type": "record", "name": "R", "fields": [
...     {"name": "n", "type": "long"}, {"name": "s", "type": ["null", "string"]}]})
>>> encode({"n": 2, "s": "a"})
b'\\x04\\x02\\x02a'
>>> encode({"n": 2.0, "s": "a"}) is None  # not sure: the caller's path decides
True
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from doa.errors import MISSING
from doa.events import Event
from doa.wire.fastcheck import CodeGen
from doa.wire.schema import PRIMITIVES, resolve_name, type_name

Encoder = Callable[[Any], "bytes | None"]
_SMALL = tuple(bytes([i]) for i in range(128))  # a varint below 128 is its own byte
_LIMITS = {"int": (-(2**31), 2**31 - 1, 31), "long": (-(2**63), 2**63 - 1, 63)}
_FLOATS = {"float": "f", "double": "d"}
_NUMBERS = ("int", "long", "float", "double")
MAX_CACHED_KEYS = 4096  # map keys whose encoding one map of a schema keeps
MAX_LAYOUTS = 256  # sets of keys one map of numbers keeps a pack for


def compile_encoder(schema: Any, prefix: bytes = b"") -> Encoder:
    """Generate ``encode(value) -> bytes | None`` for ``schema`` (parsed JSON), once per schema.

    ``encode`` returns ``prefix`` followed by the Avro binary encoding of ``value``, byte for
    byte what fastavro's ``schemaless_writer`` (``strict_allow_default=True``,
    ``disable_tuple_notation=True``) writes, when the value is one it handles exactly and one
    that writer and the codec's check accept; otherwise it returns ``None``.

    Examples
    --------
    >>> encode = compile_encoder({"type": "record", "name": "P", "fields": [
    ...     {"name": "x", "type": "double"}, {"name": "y", "type": "double"},
    ...     {"name": "tags", "type": {"type": "array", "items": "string"}, "default": []}]})
    >>> encode({"x": 1.0, "y": 2}).hex()
    '000000000000f03f000000000000004000'
    >>> encode({"x": 1.0, "y": True}), encode({"x": 1.0, "y": 2.0, "z": 3.0})
    (None, None)
    """
    gen = _EncoderGen(schema)
    body = gen.node(schema, "r", "        ", None)
    src = ("def encode(r):\n    o = [PREFIX]\n    a = o.append\n    try:\n"
           + "".join(line + "\n" for line in body)
           + "    except Exception:\n        return None\n    return b''.join(o)\n")
    gen.env["PREFIX"] = prefix
    exec(compile(src, "<doa.wire.encoder encode>", "exec"), gen.env)
    encode: Encoder = gen.env["encode"]
    encode.source = src  # type: ignore[attr-defined]  # for whoever debugs an encoder
    return encode


def _varint(z: int) -> bytes:
    """The varint of ``z`` (already zig-zagged, so not negative).

    Examples
    --------
    >>> _varint(300).hex(), _varint(2**64 - 1).hex()
    ('ac02', 'ffffffffffffffffff01')
    """
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


def _key(key: str, cache: dict[str, bytes]) -> bytes:
    """A map key's encoding (its length, then its UTF-8), kept in ``cache`` while it is small.

    Examples
    --------
    >>> cache: dict[str, bytes] = {}
    >>> _key("é", cache), cache
    (b'\\x04\\xc3\\xa9', {'é': b'\\x04\\xc3\\xa9'})
    """
    data = key.encode()  # a lone surrogate raises: the old path says so
    data = _varint(len(data) << 1) + data
    if len(cache) < MAX_CACHED_KEYS:
        cache[key] = data
    return data


def _layout(values: dict[str, Any], cache: dict[tuple[str, ...], Any], kind: str
            ) -> tuple[Callable[..., bytes], list[Any]] | None:
    """How to pack a map of numbers with these keys: a ``struct`` pack, its arguments with the
    keys' encodings in place; kept in ``cache`` while it is small (None once it is full).

    Examples
    --------
    >>> pack, args = _layout({"a": 1.0}, {}, "float")
    >>> args, pack(b"\\x02a", 1.0)
    ([b'\\x02a', None], b'\\x02a\\x00\\x00\\x80?')
    """
    if len(cache) >= MAX_LAYOUTS or any(k.__class__ is not str for k in values):
        return None
    keys = [_key(k, {}) for k in values]
    fmt = "<" + "".join(f"{len(k)}s{_FLOATS[kind]}" for k in keys)
    args: list[Any] = [None] * (2 * len(keys))
    args[0::2] = keys
    cache[tuple(values)] = layout = (struct.Struct(fmt).pack, args)
    return layout


def _index(i: int) -> bytes:
    """The bytes of a union or enum index (a zig-zag varint)."""
    return _varint(i << 1)


def _pack_many(kind: str) -> Callable[[Any], bytes]:
    """``pack(values)``: a list or tuple of numbers as consecutive floats or doubles."""
    code = _FLOATS[kind]
    pack = struct.pack

    def pack_all(values: Any) -> bytes:
        return pack(f"<{len(values)}{code}", *values)
    return pack_all


def _plain(schema: Any) -> str | None:
    """The primitive ``schema`` is (``"int"``, ``{"type": "int"}``), or None."""
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES else None
    if isinstance(schema, dict) and "logicalType" not in schema:
        kind = schema.get("type")
        return kind if isinstance(kind, str) and kind in PRIMITIVES else None
    return None


class _EncoderGen(CodeGen):
    """Writes the encoder's lines, one schema node at a time; each node appends to ``o``."""

    def __init__(self, schema: Any) -> None:
        super().__init__(schema, {
            "MISSING": MISSING, "Event": Event, "S": _SMALL, "_varint": _varint, "_key": _key,
            "_layout": _layout, "Z0": b"\x00", "T1": b"\x01",
            "_f": struct.Struct("<f").pack, "_d": struct.Struct("<d").pack,
            "_fs": _pack_many("float"), "_ds": _pack_many("double")})

    def node(self, schema: Any, v: str, ind: str, ns: str | None) -> list[str]:
        """Lines that append the encoding of the value in ``v``, or return None."""
        kind = _plain(schema)
        if kind is not None:
            return _primitive(kind, v, ind)
        if isinstance(schema, list):
            return self.union(schema, v, ind, ns)
        if isinstance(schema, str):
            full = resolve_name(schema, ns, self.defs)
            if full is None or full in self.stack:  # unknown, or recursive: the old path
                return [f"{ind}return None"]
            definition = self.defs[full]
            return self.node(definition, v, ind, type_name(definition, None)[1])
        if not isinstance(schema, dict) or "logicalType" in schema:
            return [f"{ind}return None"]
        kind = schema.get("type")
        if kind in ("record", "error"):
            return self.record(schema, v, ind, ns)
        if kind == "enum":
            table = {s: _index(i) for i, s in enumerate(schema.get("symbols", []))}
            e, t = self.var("e"), self.const("E", table)
            return [f"{ind}{e} = {t}.get({v}) if {v}.__class__ is str else None",
                    f"{ind}if {e} is None: return None", f"{ind}a({e})"]
        if kind == "fixed":
            return [f"{ind}if {v}.__class__ is not bytes or len({v}) != {int(schema['size'])}:"
                    " return None", f"{ind}a({v})"]
        if kind == "array":
            return self.array(schema["items"], v, ind, ns)
        if kind == "map":
            return self.map(schema["values"], v, ind, ns)
        if isinstance(kind, (list, dict)):
            return self.node(kind, v, ind, ns)
        return [f"{ind}return None"]

    def record(self, schema: dict[str, Any], v: str, ind: str, ns: str | None) -> list[str]:
        full, ns = type_name(schema, ns)
        fields = schema.get("fields", [])
        defaults = any("default" in f for f in fields)
        # The top record may be an input event passed on as it is (doa.events.Event: a dict
        # subclass that adds attributes and overrides no mapping method).
        lines = [f"{ind}if {v}.__class__ is not dict"
                 + ("" if self.stack else f" and {v}.__class__ is not Event") + ": return None"]
        seen = self.var("k")  # with defaults: how many fields the record has
        lines.append(f"{ind}{seen} = 0" if defaults
                     else f"{ind}if len({v}) != {len(fields)}: return None")
        self.stack.append(full)
        run: list[tuple[str, str]] = []  # consecutive float/double fields: one pack
        for f in fields:
            x, name = self.var("v"), repr(f["name"])
            if "default" in f:
                lines += [f"{ind}{x} = {v}.get({name}, MISSING)",
                          f"{ind}if {x} is MISSING: {x} = {self.const('D', f['default'])}",
                          f"{ind}else: {seen} += 1"]
            else:  # a KeyError: missing, the old path says so
                lines.append(f"{ind}{x} = {v}[{name}]")
                lines += [f"{ind}{seen} += 1"] if defaults else []
            kind = _plain(f["type"])
            if kind in _FLOATS:
                lines.append(f"{ind}if {_not_number(x)}: return None")
                run.append((x, kind))
                continue
            lines += self.pack(run, ind)
            run = []
            lines += self.node(f["type"], x, ind, ns)
        lines += self.pack(run, ind)
        self.stack.pop()
        # a key no field names: fastavro's strict writer refuses the record
        return lines + ([f"{ind}if {seen} != len({v}): return None"] if defaults else [])

    def pack(self, run: list[tuple[str, str]], ind: str) -> list[str]:
        if not run:
            return []
        if len(run) == 1:
            return [f"{ind}a(_{_FLOATS[run[0][1]]}({run[0][0]}))"]
        pack = self.const("P", struct.Struct("<" + "".join(_FLOATS[k] for _, k in run)).pack)
        return [f"{ind}a({pack}({', '.join(x for x, _ in run)}))"]

    def array(self, items: Any, v: str, ind: str, ns: str | None) -> list[str]:
        x, n = self.var("x"), self.var("n")
        lines = [f"{ind}if {v}.__class__ is not list and {v}.__class__ is not tuple:"
                 " return None", f"{ind}if {v}:", *_length(f"len({v})", n, ind + "    ")]
        kind = _plain(items)
        if kind in _FLOATS:  # check every item, then one pack
            lines += [f"{ind}    for {x} in {v}:", f"{ind}        if {_not_number(x)}: return None",
                      f"{ind}    a(_{_FLOATS[kind]}s({v}))"]
        else:
            lines += [f"{ind}    for {x} in {v}:", *self.node(items, x, ind + "        ", ns)]
        return [*lines, f"{ind}a(Z0)"]

    def map(self, values: Any, v: str, ind: str, ns: str | None) -> list[str]:
        # keys repeat from record to record (feature names): their encodings are cached
        k, x, n, kb = self.var("k"), self.var("x"), self.var("n"), self.var("b")
        cache = self.const("K", {})
        i1, i2 = ind + "    ", ind + "        "
        lines = [f"{ind}if {v}.__class__ is not dict: return None", f"{ind}if {v}:",
                 *_length(f"len({v})", n, i1)]
        kind = _plain(values)
        if kind in _FLOATS:  # a map of numbers (features): one pack for a known set of keys
            lay, args = self.var("L"), self.var("A")
            layouts = self.const("LC", {})
            lines += [f"{i1}{lay} = {layouts}.get(tuple({v}))",
                      f"{i1}if {lay} is None: {lay} = _layout({v}, {layouts}, {kind!r})",
                      f"{i1}if {lay} is not None:",
                      f"{i2}for {k}, {x} in {v}.items():",
                      f"{i2}    if {k}.__class__ is not str or {_not_number(x)}: return None",
                      f"{i2}{args} = {lay}[1][:]", f"{i2}{args}[1::2] = {v}.values()",
                      f"{i2}a({lay}[0](*{args}))", f"{i1}else:"]
            i1, i2 = i2, i2 + "    "
        return [*lines, f"{i1}for {k}, {x} in {v}.items():",
                f"{i2}if {k}.__class__ is not str: return None",
                f"{i2}{kb} = {cache}.get({k})",
                f"{i2}if {kb} is None: {kb} = _key({k}, {cache})", f"{i2}a({kb})",
                *self.node(values, x, i2, ns), f"{ind}a(Z0)"]

    def union(self, branches: list[Any], v: str, ind: str, ns: str | None) -> list[str]:
        plain = [_plain(b) for b in branches]
        if all(p is not None for p in plain):
            return self.primitive_union([p for p in plain if p is not None], v, ind)
        if len(branches) == 2 and "null" in plain:  # the optional value
            null = plain.index("null")
            other = branches[1 - null]
            return [f"{ind}if {v} is None: a({self.const('I', _index(null))})",
                    f"{ind}else:", f"{ind}    a({self.const('I', _index(1 - null))})",
                    *self.node(other, v, ind + "    ", ns)]
        return [f"{ind}return None"]

    def primitive_union(self, kinds: list[str], v: str, ind: str) -> list[str]:
        """As fastavro picks: the first branch that takes the value, but double over float."""
        c = self.var("c")
        lines = [f"{ind}{c} = {v}.__class__"]
        clauses: list[tuple[str, list[tuple[str, str]]]] = []  # test, [(condition, kind)]
        for cls, kind in (("None", "null"), ("bool", "boolean"), ("str", "string"),
                          ("bytes", "bytes")):
            if kind in kinds:
                test = f"{v} is None" if cls == "None" else f"{c} is {cls}"
                clauses.append((test, [("", kind)]))
        ints: list[tuple[str, str]] = []
        for kind in (k for k in kinds if k in _NUMBERS):
            if kind in _LIMITS:
                lo, hi, _ = _LIMITS[kind]
                ints.append((f"{lo} <= {v} <= {hi}", kind))
            else:
                ints.append(("", "double" if "double" in kinds else kind))
                break
        if ints:
            clauses.append((f"{c} is int", ints))
        if "double" in kinds or "float" in kinds:
            clauses.append((f"{c} is float", [("", "double" if "double" in kinds else "float")]))
        word = "if"
        for test, choices in clauses:
            lines.append(f"{ind}{word} {test}:")
            word = "elif"
            inner, w2 = ind + "    ", "if"
            for cond, kind in choices:
                body = [f"{inner}    a({self.const('I', _index(kinds.index(kind)))})",
                        *_primitive(kind, v, inner + "    ", checked=True)]
                if cond:
                    lines += [f"{inner}{w2} {cond}:", *body]
                    w2 = "elif"
                else:
                    lines += [f"{inner}else:", *body] if w2 == "elif" else [
                        line[4:] for line in body]
                    break
            else:
                lines.append(f"{inner}else: return None")
        return [*lines, f"{ind}else: return None"]


def _not_number(x: str) -> str:
    return f"{x}.__class__ is not float and {x}.__class__ is not int"


def _length(size: str, n: str, ind: str) -> list[str]:
    """Lines appending the varint of ``size`` (a length or count, so never negative)."""
    return [f"{ind}{n} = {size} << 1", f"{ind}a(S[{n}] if {n} < 128 else _varint({n}))"]


def _primitive(kind: str, v: str, ind: str, checked: bool = False) -> list[str]:
    """Lines that append the value of ``v``; ``checked``: its class (and range) is known."""
    if kind == "null":
        return [] if checked else [f"{ind}if {v} is not None: return None"]
    if kind == "boolean":
        return [*([] if checked else [f"{ind}if {v}.__class__ is not bool: return None"]),
                f"{ind}a(T1 if {v} else Z0)"]
    if kind in _LIMITS:
        lo, hi, bits = _LIMITS[kind]
        test = [] if checked else [
            f"{ind}if {v}.__class__ is not int or {v} < {lo} or {v} > {hi}: return None"]
        return [*test, f"{ind}z = ({v} << 1) ^ ({v} >> {bits})",
                f"{ind}a(S[z] if z < 128 else _varint(z))"]
    if kind in _FLOATS:
        test = [] if checked else [f"{ind}if {_not_number(v)}: return None"]
        return [*test, f"{ind}a(_{_FLOATS[kind]}({v}))"]
    # string, bytes: a length, then the bytes (a lone surrogate raises: the old path says so)
    b = f"{v}.encode()" if kind == "string" else v
    cls = "str" if kind == "string" else "bytes"
    test = [] if checked else [f"{ind}if {v}.__class__ is not {cls}: return None"]
    return [*test, f"{ind}s = {b}", *_length("len(s)", "n", ind), f"{ind}a(s)"]
