"""The generated validator, out of codec: a strict Avro binary reader compiled per schema.

fastavro reads what it is given: a negative union or enum index picks a branch counted from
the end, a varint may run on past 10 bytes, a boolean byte of 7 reads as true. The reader
generated here from a schema's structure decodes and checks in one pass, so a body is a
record only when it is the one encoding of it: every varint minimal and at most 10 bytes
(5 for an int, within 32 bits), union and enum indexes within range, lengths and block
counts not negative, a block's byte size exactly the bytes its items take, booleans 0 or 1,
strings valid UTF-8, map keys distinct, and nothing after the record. Anything else raises
:class:`Malformed` with a short ``reason``: ``truncated``, ``varint``, ``int-range``,
``union-index``, ``enum-index``, ``length``, ``block-size``, ``boolean``, ``utf8``,
``duplicate-key``, ``trailing-bytes``, ``too-deep`` or ``logical``.

Values come back as fastavro's ``schemaless_reader`` gives them, logical types included
(fastavro's own logical readers convert them). Arrays and maps may come in several blocks,
with negative counts and byte sizes, as the specification allows.

Examples
--------
>>> read = compile_reader({"type": "record", "name": "R", "fields": [
...     {"name": "n", "type": "long"}, {"name": "s", "type": ["null", "string"]}]})
>>> read(b"\\x04\\x02\\x02a", 0)
{'n': 2, 's': 'a'}
>>> read(b"\\x04\\x03", 0)
Traceback (most recent call last):
...
doa.wire.fastcheck.Malformed: union index -2 at byte 1, the union has 2 branches
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from fastavro.read import LOGICAL_READERS

from doa.wire.schema import PRIMITIVES, named_types, resolve_name, type_name

Reader = Callable[[bytes, int], Any]
MAX_EMPTY_ITEMS = 1 << 20  # items that take no bytes (nulls) one array or map may hold
_FLOATS = {"float": ("f", 4), "double": ("d", 8)}


class CodeGen:
    """Names for the code generated from a schema: fresh variables, constants in its globals.

    The encoder, the reader and the codec's check each write their code with one of these:
    ``defs`` holds the schema's named types, ``stack`` the named types being written inline
    (innermost last), ``env`` the globals the code is run with.

    Examples
    --------
    >>> gen = CodeGen({"type": "enum", "name": "E", "symbols": ["a"]}, {"x": 0})
    >>> gen.var("v"), gen.const("T", {"a": 0}), sorted(gen.env), list(gen.defs)
    ('v1', 'T2', ['T2', 'x'], ['E'])
    """

    def __init__(self, schema: Any, env: dict[str, Any]) -> None:
        self.defs = named_types(schema)
        self.stack: list[str] = []
        self.count = 0
        self.env = env

    def var(self, prefix: str) -> str:
        """A variable name not given out before: ``prefix`` and a number."""
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, prefix: str, value: Any) -> str:
        """A new global name of the generated code, bound to ``value``."""
        name = self.var(prefix)
        self.env[name] = value
        return name


class Malformed(ValueError):
    """Bytes that are not the Avro encoding of a value of the schema.

    Examples
    --------
    >>> Malformed("varint", "varint at byte 3 runs over 10 bytes").reason
    'varint'
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def compile_reader(schema: Any) -> Reader:
    """Generate ``read(data, start) -> value`` for ``schema`` (parsed JSON), once per schema.

    ``read`` decodes the value that starts at byte ``start`` of ``data`` (``bytes``) and ends
    at its last byte; otherwise it raises :class:`Malformed` with the reason.

    Examples
    --------
    >>> read = compile_reader({"type": "enum", "name": "E", "symbols": ["A", "B"]})
    >>> read(b"\\x02", 0)
    'B'
    >>> read(b"\\x02\\x00", 0)
    Traceback (most recent call last):
    ...
    doa.wire.fastcheck.Malformed: 1 bytes left after the value, which ends at byte 1
    """
    gen = _ReaderGen(schema)
    body = gen.node(schema, "r", "        ", None)
    src = ("def read(d, p):\n    L = len(d)\n    try:\n" + _lines(body) + _TOP_TAIL)
    while gen.pending:
        full = gen.pending.pop()
        gen.stack = [full]
        definition = gen.defs[full]
        inner = gen.node(definition, "r", "    ", type_name(definition, None)[1])
        src += f"def {gen.functions[full]}(d, p):\n    L = len(d)\n{_lines(inner)}    return r, p\n"
    exec(compile(src, "<doa.wire.fastcheck reader>", "exec"), gen.env)
    read: Reader = gen.env["read"]
    read.source = src  # type: ignore[attr-defined]  # for whoever debugs a reader
    return read


_TOP_TAIL = """\
    except Malformed:
        raise
    except (IndexError, struct_error):
        raise Malformed("truncated", f"{L} bytes end inside the value") from None
    except UnicodeDecodeError as exc:
        raise Malformed("utf8", f"a string is not valid UTF-8: {exc.reason} at its byte "
                        f"{exc.start}") from None
    except RecursionError:
        raise Malformed("too-deep", "the value nests deeper than Python's stack") from None
    except Exception as exc:  # a logical reader refused the value (a date out of range...)
        raise Malformed("logical", f"{type(exc).__name__}: {exc}") from None
    if p != L:
        raise Malformed("trailing-bytes", f"{L - p} bytes left after the value, which ends at "
                        f"byte {p}")
    return r
"""


def _lines(body: list[str]) -> str:
    return "".join(line + "\n" for line in body)


# --- helpers the generated code calls off its fast paths ---------------------------------------


def _long(d: bytes, p: int) -> tuple[int, int]:
    """The zig-zag varint at ``p`` and the position after it; minimal, at most 10 bytes."""
    s = p
    x = shift = 0
    while True:
        b = d[p]
        p += 1
        x |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
        if shift == 70:
            raise Malformed("varint", f"varint at byte {s} runs over 10 bytes")
    if b == 0 and p - s > 1:
        raise Malformed("varint", f"varint at byte {s} takes {p - s} bytes, its value fewer")
    if shift == 63 and b > 1:
        raise Malformed("varint", f"varint at byte {s} is wider than 64 bits")
    return (x >> 1) ^ -(x & 1), p


def _int(d: bytes, p: int) -> tuple[int, int]:
    v, q = _long(d, p)
    if not -(2**31) <= v < 2**31:
        raise Malformed("int-range", f"int at byte {p} is {v}, outside 32 bits")
    return v, q


def _size(d: bytes, p: int) -> tuple[int, int]:
    n, q = _long(d, p)
    if n < 0:
        raise Malformed("length", f"length at byte {p} is {n}")
    return n, q


def _block(d: bytes, p: int) -> tuple[int, int, int]:
    """A block's item count, the position of its first item and where it ends (-1: unsaid)."""
    c, q = _long(d, p)
    if c >= 0:
        return c, q, -1
    size, q = _size(d, q)
    return -c, q, q + size


def _block_end(p: int, e: int) -> None:
    raise Malformed("block-size", f"a block said it ends at byte {e}, its items end at {p}")


def _index(d: bytes, p: int, n: int, kind: str) -> int:
    """The index at ``p`` of a union of ``n`` branches (or enum of ``n`` symbols), or raise."""
    i = _int(d, p)[0]
    if not 0 <= i < n:
        what = "the union has" if kind == "union" else "the enum has"
        raise Malformed(f"{kind}-index", f"{kind} index {i} at byte {p}, {what} {n} "
                        f"{'branches' if kind == 'union' else 'symbols'}")
    return i


def _empty_items(total: int) -> None:
    if total > MAX_EMPTY_ITEMS:
        raise Malformed("length", f"{total} items that take no bytes; at most {MAX_EMPTY_ITEMS}")


def _boolean(b: int, p: int) -> None:
    raise Malformed("boolean", f"boolean at byte {p} is {b}, not 0 or 1")


def _duplicate(key: str, p: int) -> None:
    raise Malformed("duplicate-key", f"map key {key!r} appears twice (again before byte {p})")


class _ReaderGen(CodeGen):
    """Writes the reader's lines, one schema node at a time; each node sets one variable."""

    def __init__(self, schema: Any) -> None:
        super().__init__(schema, {
            "Malformed": Malformed, "struct_error": struct.error, "_long": _long, "_int": _int,
            "_size": _size, "_block": _block, "_block_end": _block_end, "_index": _index,
            "_empty_items": _empty_items, "_boolean": _boolean, "_duplicate": _duplicate,
            "_f": struct.Struct("<f").unpack_from, "_d": struct.Struct("<d").unpack_from})
        self.functions: dict[str, str] = {}  # recursive types: full name -> function name
        self.pending: list[str] = []

    def node(self, schema: Any, t: str, ind: str, ns: str | None) -> list[str]:
        """Lines that read a value of ``schema`` at ``p`` into ``t`` and move ``p`` past it."""
        if isinstance(schema, list):
            return self.union(schema, t, ind, ns)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _primitive(schema, t, ind)
            full = resolve_name(schema, ns, self.defs)
            if full is None:
                raise ValueError(f"unknown type name {schema!r}")
            if full in self.stack:  # a recursive type: call its own function
                if full not in self.functions:
                    self.functions[full] = f"read_{len(self.functions)}"
                    self.pending.append(full)
                return [f"{ind}{t}, p = {self.functions[full]}(d, p)"]
            definition = self.defs[full]
            return self.node(definition, t, ind, type_name(definition, None)[1])
        kind = schema["type"]
        logical = f"{kind}-{schema.get('logicalType')}"
        if isinstance(kind, str) and logical in LOGICAL_READERS:
            fn = self.const("LR", LOGICAL_READERS[logical])
            plain = {k: v for k, v in schema.items() if k != "logicalType"}
            return [*self.node(plain, t, ind, ns),
                    f"{ind}{t} = {fn}({t}, {self.const('S', schema)}, None)"]
        if kind in ("record", "error"):
            return self.record(schema, t, ind, ns)
        if kind == "enum":
            return self.enum(schema["symbols"], t, ind)
        if kind == "fixed":
            return [f"{ind}e = p + {int(schema['size'])}",
                    f"{ind}if e > L: raise IndexError", f"{ind}{t} = d[p:e]", f"{ind}p = e"]
        if kind in ("array", "map"):
            return self.blocks(schema, t, ind, ns)
        return self.node(kind, t, ind, ns)  # {"type": "int"} and the like

    def record(self, schema: dict[str, Any], t: str, ind: str, ns: str | None) -> list[str]:
        full, ns = type_name(schema, ns)
        self.stack.append(full)
        lines: list[str] = []
        names: list[str] = []
        run: list[tuple[str, str]] = []  # consecutive float/double fields: one unpack
        for f in schema.get("fields", []):
            v = self.var("v")
            names.append(f"{f['name']!r}: {v}")
            if isinstance(f["type"], str) and f["type"] in _FLOATS:
                run.append((v, f["type"]))
                continue
            lines += self.floats(run, ind)
            run = []
            lines += self.node(f["type"], v, ind, ns)
        lines += self.floats(run, ind)
        self.stack.pop()
        return [*lines, f"{ind}{t} = {{{', '.join(names)}}}"]

    def floats(self, run: list[tuple[str, str]], ind: str) -> list[str]:
        if not run:
            return []
        fmt = "<" + "".join(_FLOATS[k][0] for _, k in run)
        unpack = self.const("U", struct.Struct(fmt).unpack_from)
        targets = "".join(f"{v}, " for v, _ in run)
        return [f"{ind}{targets}= {unpack}(d, p)",
                f"{ind}p += {sum(_FLOATS[k][1] for _, k in run)}"]

    def enum(self, symbols: list[str], t: str, ind: str) -> list[str]:
        syms = self.const("E", tuple(symbols))
        return [f"{ind}b = d[p]",
                f"{ind}if b < {min(2 * len(symbols), 128)} and not b & 1:",
                f"{ind}    {t} = {syms}[b >> 1]", f"{ind}    p += 1",
                f"{ind}else:", f"{ind}    {t} = {syms}[_index(d, p, {len(symbols)}, 'enum')]",
                f"{ind}    p = _long(d, p)[1]"]

    def union(self, branches: list[Any], t: str, ind: str, ns: str | None) -> list[str]:
        n = len(branches)
        if n <= 63:  # every index is one byte: 0, 2, 4, ...
            lines = [f"{ind}b = d[p]", f"{ind}p += 1"]
            for i, branch in enumerate(branches):
                sub = self.node(branch, t, ind + "    ", ns)
                lines += [f"{ind}{'if' if i == 0 else 'elif'} b == {2 * i}:", *sub]
            return [*lines, f"{ind}else:", f"{ind}    _index(d, p - 1, {n}, 'union')"]
        lines = [f"{ind}b = _index(d, p, {n}, 'union')", f"{ind}p = _long(d, p)[1]"]
        for i, branch in enumerate(branches):
            lines += [f"{ind}{'if' if i == 0 else 'elif'} b == {i}:",
                      *self.node(branch, t, ind + "    ", ns)]
        return lines

    def blocks(self, schema: dict[str, Any], t: str, ind: str, ns: str | None) -> list[str]:
        is_map = schema["type"] == "map"
        inner = schema["values"] if is_map else schema["items"]
        x, end, total = self.var("x"), self.var("e"), self.var("n")
        empty = not is_map and self.min_size(inner, ns, set()) == 0
        i2 = ind + "        "
        lines = [f"{ind}{t} = {{}}" if is_map else f"{ind}{t} = []"]
        lines += [f"{ind}{total} = 0"] if empty else []
        lines += [f"{ind}while True:", f"{ind}    b = d[p]",
                  f"{ind}    if not b & 0x81: c = b >> 1; p += 1; {end} = -1",
                  f"{ind}    else: c, p, {end} = _block(d, p)",
                  f"{ind}    if not c: break"]
        if empty:
            lines += [f"{ind}    {total} += c", f"{ind}    _empty_items({total})"]
        lines += [f"{ind}    for _ in range(c):"]
        if is_map:
            k = self.var("k")
            lines += _primitive("string", k, i2)
            lines += self.node(inner, x, i2, ns)
            lines += [f"{i2}if {k} in {t}: _duplicate({k}, p)", f"{i2}{t}[{k}] = {x}"]
        else:
            lines += self.node(inner, x, i2, ns)
            lines += [f"{i2}{t}.append({x})"]
        return [*lines, f"{ind}    if {end} >= 0 and p != {end}: _block_end(p, {end})"]

    def min_size(self, schema: Any, ns: str | None, seen: set[str]) -> int:
        """The fewest bytes a value of ``schema`` takes (0 for null, empty records...)."""
        if isinstance(schema, list):
            return 1
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return {"null": 0, "float": 4, "double": 8}.get(schema, 1)
            full = resolve_name(schema, ns, self.defs)
            if full is None or full in seen:
                return 0
            definition = self.defs[full]
            return self.min_size(definition, type_name(definition, None)[1], seen | {full})
        kind = schema["type"]
        if kind in ("record", "error"):
            full, ns = type_name(schema, ns)
            return sum(self.min_size(f["type"], ns, seen | {full}) for f in schema["fields"])
        if kind == "fixed":
            return int(schema["size"])
        return 1 if kind in ("enum", "array", "map") else self.min_size(kind, ns, seen)


def _primitive(kind: str, t: str, ind: str) -> list[str]:
    if kind == "null":
        return [f"{ind}{t} = None"]
    if kind == "boolean":
        return [f"{ind}b = d[p]", f"{ind}if b > 1: _boolean(b, p)",
                f"{ind}{t} = b == 1", f"{ind}p += 1"]
    if kind in ("int", "long"):
        return [f"{ind}b = d[p]",
                f"{ind}if b < 0x80: {t} = (b >> 1) ^ -(b & 1); p += 1",
                f"{ind}else: {t}, p = _{kind}(d, p)"]
    if kind in _FLOATS:
        fmt, size = _FLOATS[kind]
        return [f"{ind}{t}, = _{fmt}(d, p)", f"{ind}p += {size}"]
    # bytes, string: a length, then that many bytes
    value = "d[p:e].decode()" if kind == "string" else "d[p:e]"
    return [f"{ind}b = d[p]",
            f"{ind}if not b & 0x81: e = p + 1 + (b >> 1); p += 1",
            f"{ind}else: e, p = _size(d, p); e += p",
            f"{ind}if e > L: raise IndexError",
            f"{ind}{t} = {value}", f"{ind}p = e"]
