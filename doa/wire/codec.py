"""Encode and decode records of a stream: Avro single-object encoding, validated at the edge.

Wire format (Avro specification, "Single-object encoding"): the two marker bytes ``C3 01``,
the schema's 8-byte CRC-64-AVRO fingerprint (little-endian), then the Avro binary body.

Encoding first tries the encoder generated per schema (:mod:`doa.wire.encoder`), which writes
the same bytes for the records it is sure of and leaves every other record to the path below.
That path validates in the same pass as it writes: a generated check covers the cases
fastavro's writer would accept silently (floats or bools in int fields, out-of-range ints,
strings in double fields, any truthy value in a boolean field, anything in a null field), then
fastavro's strict writer does the rest, with its tuple notation for union branches turned off.
Only when either refuses does the (slow) explainer walk the record to name the field, the
expected type and the value.

Decoding is spec-strict and takes one pass: a reader generated per schema
(:mod:`doa.wire.fastcheck`) decodes and checks the body together, so a negative union index, an
overlong varint, trailing bytes or invalid UTF-8 is a :class:`DecodeError` with its reason,
never a record. A body written with an older registered version is checked by the reader of
its own schema, then resolved into the current one by fastavro.

Examples
--------
>>> from doa.wire.schema import Schema
>>> s = Schema.from_json({"type": "record", "name": "reading", "fields": [
...     {"name": "sensor_id", "type": "string"},
...     {"name": "location", "type": {"type": "record", "name": "Location",
...      "fields": [{"name": "lat", "type": "double"}]}}]})
>>> codec = Codec("readings", s)
>>> data = codec.encode({"sensor_id": "s1", "location": {"lat": 52.1}})
>>> data[:2].hex(), codec.decode(data)
('c301', {'sensor_id': 's1', 'location': {'lat': 52.1}})
>>> codec.encode({"sensor_id": "s1", "location": {"lat": "north"}})
Traceback (most recent call last):
...
doa.errors.EncodeError: stream 'readings': field reading.location.lat expected double, got ...
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from doa.errors import MISSING, DecodeError, EncodeError
from doa.wire.encoder import compile_encoder
from doa.wire.explain import LOGICAL_PY_TYPES, explain, unreadable
from doa.wire.fastcheck import CodeGen, Malformed, Reader, compile_reader
from doa.wire.schema import PRIMITIVES, Schema, resolve_name, type_name

MARKER = b"\xc3\x01"
HEADER_SIZE = 10


def _looks(data: bytes) -> str:
    """What bytes without doa's header look like, when that tells how they got there.

    >>> print(_looks(b'{"id": 1}')[:52])
    ; it is JSON text, not Avro: written by a producer t
    >>> _looks(b"plain words").split(",")[0], _looks(b"\\x00\\x00\\x00\\x01x")
    ('; it is text', '')
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return ""
    if not text.isprintable():
        return ""
    kind = "JSON text" if text.lstrip()[:1] in ("{", "[") else "text"
    return (f"; it is {kind}, not Avro: written by a producer that is not doa's (publish with "
            f"`doa publish` or doa's Publisher)")


class Codec:
    """Encoder/decoder for one stream.

    Parameters
    ----------
    stream : str
        The stream's name, used in every error message.
    schema : Schema
        The current (reader) schema.
    history : iterable of Schema
        Older registered versions: payloads written with them decode into ``schema``.
    """

    def __init__(self, stream: str, schema: Schema, history: Iterable[Schema] = ()) -> None:
        self.stream = stream
        self.schema = schema
        self.history = {s.fingerprint: s for s in history if s.fingerprint != schema.fingerprint}
        self._header = MARKER + schema.fingerprint
        self._check = compile_check(schema.json)
        self._encode = compile_encoder(schema.json, prefix=self._header)
        self._fingerprint = schema.fingerprint
        self._read = compile_reader(schema.json)
        self._old_readers: dict[bytes, Reader] = {}

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Validate and encode ``record``; raise :class:`EncodeError` naming the bad field."""
        data = self._encode(record)  # the generated encoder, when it is sure of the record
        if data is not None:
            return data
        buf = io.BytesIO()
        buf.write(self._header)
        try:
            if self._check(record):
                schemaless_writer(buf, self.schema.parsed, record, strict_allow_default=True,
                                  disable_tuple_notation=True)
                return buf.getvalue()
        except Exception as exc:  # fastavro raises TypeError/ValueError/AttributeError/...
            raise self._explain(record, exc) from exc
        return self._slow_encode(buf, record)

    def _explain(self, record: object, cause: Exception | None) -> EncodeError:
        found = explain(self.schema.json, record, self.schema.name)
        if found is None:  # should not happen; keep fastavro's words rather than lose them
            return EncodeError(self.stream, self.schema.name, self.schema.fullname, record,
                               detail=str(cause))
        path, expected, value = found
        return EncodeError(self.stream, path, expected, value)

    def _slow_encode(self, buf: io.BytesIO, record: Mapping[str, Any]) -> bytes:
        # The quick check refused a type it does not know (a numpy scalar, say); the explainer
        # accepts any value Avro can represent, so write it when it finds nothing wrong.
        if explain(self.schema.json, record, self.schema.name) is not None:
            raise self._explain(record, None)
        try:
            schemaless_writer(buf, self.schema.parsed, record, strict_allow_default=True,
                              disable_tuple_notation=True)
        except Exception as exc:
            raise self._explain(record, exc) from exc
        return buf.getvalue()

    def decode(self, data: bytes | bytearray | memoryview) -> dict[str, Any]:
        """Decode single-object encoded ``data``; raise :class:`DecodeError` with the reason.

        Decoding is spec-strict (see :mod:`doa.wire.fastcheck`): a body is a record only when it is
        well-formed Avro for the writer's schema, and nothing follows it.
        """
        if data.__class__ is not bytes:
            data = bytes(data)
        fp = data[2:HEADER_SIZE]
        try:
            if fp == self._fingerprint and data[:2] == MARKER:
                record: Any = self._read(data, HEADER_SIZE)
            else:
                record = self._decode_other(data, fp)
        except Malformed as exc:
            raise DecodeError(self.stream, exc.reason, self._locate(data, fp, exc)) from None
        if record.__class__ is not dict:
            raise DecodeError(self.stream, "corrupt", "stream schemas must be records")
        return record

    def _locate(self, data: bytes, fp: bytes, exc: Malformed) -> str:
        """The reader's reason, after the field it is in (a second walk: refused bodies only)."""
        from doa.wire.locate import where

        writer = self.schema if fp == self._fingerprint else self.history.get(fp)
        path = None if writer is None else where(writer.json, data, HEADER_SIZE)
        return f"{exc} (in field {path})" if path else str(exc)

    def _decode_other(self, data: bytes, fp: bytes) -> Any:
        """A short or foreign header, or a body written with an older registered version."""
        if len(data) < HEADER_SIZE:
            if data[:2] != MARKER[: len(data[:2])]:
                raise DecodeError(self.stream, "bad-marker", f"starts with {data[:2].hex()!r}")
            raise DecodeError(self.stream, "truncated", f"{len(data)} bytes, header needs 10")
        if data[:2] != MARKER:
            raise DecodeError(self.stream, "bad-marker",
                              f"starts with {data[:2].hex()!r}, expected 'c301'{_looks(data)}")
        writer = self.history.get(fp)
        if writer is None:
            raise DecodeError(self.stream, "unknown-fingerprint",
                              f"fingerprint {fp.hex()} is not a version of "
                              f"{self.schema.fullname} registered on the broker when this "
                              "process last read the registry (written with a schema never "
                              "deployed? `doa deploy` registers a topology's schemas)")
        if fp not in self._old_readers:
            self._old_readers[fp] = compile_reader(writer.json)
        self._old_readers[fp](data, HEADER_SIZE)  # well-formed for its writer: then resolve
        buf = io.BytesIO(data)
        buf.seek(HEADER_SIZE)
        try:
            return schemaless_reader(buf, writer.parsed, self.schema.parsed)
        except Exception as exc:  # the writer's value has no place in the reader's schema
            raise DecodeError(self.stream, "resolution", self._unresolved(data, writer, exc)
                              ) from exc

    def _unresolved(self, data: bytes, writer: Schema, exc: Exception) -> str:
        """Why a body of ``writer``'s version does not resolve into this schema, field by
        field in doa's words (fastavro's say ``Schema mismatch: double is not int``)."""
        value = self._old_readers[data[2:HEADER_SIZE]](data, HEADER_SIZE)
        found = unreadable(writer.json, self.schema.json, self.schema.name, value)
        why = "; ".join(f"field {path}: {text}" for path, text in found) or (
            f"{writer.fullname} cannot be read as {self.schema.fullname}: {exc}")
        return (f"{why} (written with schema {data[2:HEADER_SIZE].hex()}, read with "
                f"{self._fingerprint.hex()}: run the readers with the new schema, then "
                "`doa dlq --replay`)")


# --- the generated fast check -------------------------------------------------------------

_LIMITS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


def compile_check(schema: Any) -> Any:
    """Generate a function ``check(record) -> bool`` covering what fastavro writes silently.

    It returns False when a lax-typed field (null, int, long, float, double, boolean, and
    logical types on them unless given their Python type, a datetime say) holds a value of the
    wrong Python type or range, or a record, array or map is not a dict, list or dict;
    everything else is left to fastavro's strict writer. Named types resolve as in the Avro
    specification; a recursive type gets a function of its own.

    Examples
    --------
    >>> check = compile_check({"type": "record", "name": "R", "fields": [
    ...     {"name": "n", "type": "int"}, {"name": "s", "type": "string"}]})
    >>> check({"n": 3, "s": "x"}), check({"n": 1.5, "s": "x"}), check({"n": True, "s": "x"})
    (True, False, False)
    """
    gen = _CheckGen(schema)
    if isinstance(schema, dict) and schema.get("type") in ("record", "error"):
        body = gen.record(schema, "r", "    ", None, top=True)
    else:
        body = gen.node(schema, "r", "    ", None)
    src = _function("check", body)
    while gen.pending:
        full = gen.pending.pop()
        gen.stack = [full]
        definition = gen.defs[full]
        src += _function(gen.functions[full],
                         gen.record(definition, "r", "    ", type_name(definition, None)[1]))
    exec(compile(src, "<doa.wire.codec check>", "exec"), gen.env)
    return gen.env["check"]


def _function(name: str, body: list[str]) -> str:
    return f"def {name}(r):\n" + "".join(line + "\n" for line in body) + "    return True\n"


class _CheckGen(CodeGen):
    """Writes the lines of the check, one schema node at a time."""

    def __init__(self, schema: Any) -> None:
        super().__init__(schema, {"MISSING": MISSING})
        self.functions: dict[str, str] = {}  # recursive records: full name -> function name
        self.pending: list[str] = []

    def node(self, schema: Any, var: str, ind: str, ns: str | None) -> list[str]:
        if isinstance(schema, list):
            return self.union(schema, var, ind, ns)
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return _primitive(schema, var, ind)
            full = resolve_name(schema, ns, self.defs)
            if full is None:
                return []  # fastavro refused unknown names when the schema was parsed
            if full in self.stack:  # a recursive type: call its own function
                if full not in self.functions:
                    self.functions[full] = f"check_{len(self.functions)}"
                    self.pending.append(full)
                return [f"{ind}if not {self.functions[full]}({var}): return False"]
            return self.node(self.defs[full], var, ind, ns)
        if not isinstance(schema, dict):
            return []
        if "logicalType" in schema:
            return self.logical(schema, var, ind)
        kind = schema.get("type")
        if kind in ("record", "error"):
            return self.record(schema, var, ind, ns)
        if kind == "array":
            return self.container(schema["items"], var, ind, ns, "list", "tuple", "")
        if kind == "map":
            return self.container(schema["values"], var, ind, ns, "dict", "dict", ".values()")
        if isinstance(kind, (str, list, dict)) and kind not in ("enum", "fixed"):
            return self.node(kind, var, ind, ns)
        return []  # enum, fixed: fastavro's writer checks them

    def record(self, schema: Any, var: str, ind: str, ns: str | None, top: bool = False
               ) -> list[str]:
        full, ns = type_name(schema, ns)
        # A nested record must be a dict; the top one is checked by the writer itself.
        lines = [] if top else [f"{ind}if {var}.__class__ is not dict: return False"]
        self.stack.append(full)
        for f in schema.get("fields", []):
            v = self.var("v")
            sub = self.node(f["type"], v, ind + "    ", ns)
            if sub:
                lines.append(f"{ind}{v} = {var}.get({f['name']!r}, MISSING)")
                lines.append(f"{ind}if {v} is not MISSING:")
                lines.extend(sub)
        self.stack.pop()
        return lines

    def container(self, inner: Any, var: str, ind: str, ns: str | None, cls1: str, cls2: str,
                  items: str) -> list[str]:
        lines = [f"{ind}if {var}.__class__ is not {cls1} and {var}.__class__ is not {cls2}:"
                 " return False"]
        item = self.var("i")
        sub = self.node(inner, item, ind + "    ", ns)
        if sub:
            lines.append(f"{ind}for {item} in {var}{items}:")
            lines.extend(sub)
        return lines

    def logical(self, schema: dict[str, Any], var: str, ind: str) -> list[str]:
        # fastavro converts datetimes, decimals, uuids itself; any other value must be what the
        # underlying type takes (else it writes 1.5 or True as 1 millisecond).
        kind = schema.get("type")
        bad = _bad(kind, var) if isinstance(kind, str) else None
        if bad is None:
            return []
        classes = LOGICAL_PY_TYPES.get(schema["logicalType"])
        if classes is None:
            return [f"{ind}if {bad}: return False"]
        name = self.const("L", classes)
        return [f"{ind}if not isinstance({var}, {name}) and ({bad}): return False"]

    def union(self, branches: list[Any], var: str, ind: str, ns: str | None) -> list[str]:
        # An optional value: check the value when there is one. Other unions: fastavro picks
        # the branch by validating the value strictly against each.
        real = [b for b in branches if b != "null"]
        if len(branches) == 2 and len(real) == 1:
            sub = self.node(real[0], var, ind + "    ", ns)
            if sub:
                return [f"{ind}if {var} is not None:", *sub]
        return []


def _primitive(kind: str, var: str, ind: str) -> list[str]:
    bad = _bad(kind, var)
    return [] if bad is None else [f"{ind}if {bad}: return False"]


def _bad(kind: str, var: str) -> str | None:
    """The condition on which ``var`` is not a value of the primitive ``kind`` (None: any)."""
    if kind in _LIMITS:
        lo, hi = _LIMITS[kind]
        return f"{var}.__class__ is not int or {var} < {lo} or {var} > {hi}"
    if kind in ("float", "double"):
        return f"{var}.__class__ is not float and {var}.__class__ is not int"
    if kind == "boolean":
        return f"{var}.__class__ is not bool"
    if kind == "null":  # fastavro writes nothing for null, whatever the value
        return f"{var} is not None"
    return None
