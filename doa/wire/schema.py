"""Avro schemas: load ``.avsc`` files, resolve cross-file references, fingerprint them.

A :class:`SchemaSet` is every schema of a directory (plus doa's own event schemas), indexed by
full name, short name and file stem. Each :class:`Schema` knows its self-contained JSON (named
types defined in other files inlined at first use), its Parsing Canonical Form and its
CRC-64-AVRO fingerprint, computed as the Avro specification defines them.

Examples
--------
>>> schemas = SchemaSet.load(builtin_schema_dir())
>>> dl = schemas["dead_letter"]
>>> dl.fullname
'doa.DeadLetter'
>>> len(dl.fingerprint)
8
"""

from __future__ import annotations

import json
from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass, field
from functools import reduce
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from doa.errors import SchemaError

_EMPTY64 = 0xC15D213AA4D7A795
_TABLE = tuple(
    reduce(lambda fp, _: (fp >> 1) ^ (_EMPTY64 & -(fp & 1)), range(8), i) for i in range(256)
)
PRIMITIVES = frozenset(["null", "boolean", "int", "long", "float", "double", "bytes", "string"])


def crc64_avro(data: bytes) -> bytes:
    """Return the CRC-64-AVRO (Rabin) fingerprint of ``data``, 8 bytes little-endian.

    Examples
    --------
    >>> crc64_avro(b'"int"').hex()
    '8f5c393f1ad57572'
    """
    fp = _EMPTY64
    for b in data:
        fp = (fp >> 8) ^ _TABLE[(fp ^ b) & 0xFF]
    return fp.to_bytes(8, "little")


def builtin_schema_dir() -> Path:
    """Directory of doa's own event schemas (dead letters, ...), shipped in the package."""
    return Path(__file__).parent.parent / "schemas"


@dataclass(frozen=True)
class Schema:
    """One parsed Avro schema.

    Attributes
    ----------
    name, fullname : the record's short and full names (or the file stem for non-records)
    json : the self-contained schema (cross-file references inlined)
    parsed : fastavro's parsed form, used by the codec
    canonical : the Parsing Canonical Form
    fingerprint : CRC-64-AVRO of ``canonical``, little-endian, as in single-object encoding
    path : the file it came from, if any
    """

    name: str
    fullname: str
    json: Any
    parsed: Any = field(repr=False, compare=False)
    canonical: str = field(repr=False)
    fingerprint: bytes
    path: Path | None = None

    @classmethod
    def from_json(cls, schema: Any, path: Path | None = None) -> Schema:
        """Parse a self-contained schema given as JSON data.

        Examples
        --------
        >>> Schema.from_json({"type": "record", "name": "P", "fields": [
        ...     {"name": "x", "type": "int"}]}).canonical
        '{"name":"P","type":"record","fields":[{"name":"x","type":"int"}]}'
        """
        where = f" in {path}" if path else ""
        try:
            # The write hint marks the result as parsed, so fastavro's reader and writer use it
            # as is; without it they parse the schema again on every call (twice as slow).
            parsed = parse_schema(schema)
            canonical = to_parsing_canonical_form(parsed)
        except Exception as exc:  # fastavro raises several types for bad schemas
            raise SchemaError(f"invalid Avro schema{where}: {exc}") from exc
        if isinstance(schema, dict) and "name" in schema:
            fullname = type_name(schema, None)[0]
        else:
            fullname = path.stem if path else str(schema)
        return cls(
            name=fullname.rsplit(".", 1)[-1],
            fullname=fullname,
            json=schema,
            parsed=parsed,
            canonical=canonical,
            fingerprint=crc64_avro(canonical.encode()),
            path=path,
        )

    @classmethod
    def from_file(cls, path: str | Path, known: SchemaSet | None = None) -> Schema:
        """Load one ``.avsc`` file; references to named types resolve against ``known``."""
        p = Path(path)
        raw = _read_json(p)
        defs = dict(known.definitions) if known else {}
        return cls.from_json(inline_references(raw, defs, p), p)


class SchemaSet:
    """The schemas of one or more directories, looked up by full name, name or file stem."""

    def __init__(self) -> None:
        self._by_key: dict[str, Schema] = {}
        self.definitions: dict[str, Any] = {}  # every named type seen, by full name
        self.by_fingerprint: dict[bytes, Schema] = {}
        self._origins: dict[str, Path | None] = {}  # the file that defined each named type

    @classmethod
    def load(cls, *dirs: str | Path, builtin: bool = True) -> SchemaSet:
        """Load every ``*.avsc`` of ``dirs`` (and doa's own schemas unless ``builtin=False``)."""
        out = cls()
        paths: list[Path] = []
        for d in [Path(x) for x in dirs] + ([builtin_schema_dir()] if builtin else []):
            if not d.is_dir():
                raise SchemaError(f"schema directory {str(d)!r} does not exist")
            paths.extend(sorted(d.glob("*.avsc")))
        out._add_files(paths)
        return out

    @classmethod
    def from_files(cls, paths: list[Path], builtin: bool = False) -> SchemaSet:
        """Load the given ``.avsc`` files (and doa's own schemas if ``builtin``)."""
        out = cls()
        extra = sorted(builtin_schema_dir().glob("*.avsc")) if builtin else []
        out._add_files([*extra, *paths])
        return out

    def _add_files(self, paths: list[Path]) -> None:
        raws = {p: _read_json(p) for p in paths}
        for p, raw in raws.items():
            found: dict[str, Any] = {}
            _collect_definitions(raw, None, found, p)
            for full, node in found.items():
                known = self.definitions.get(full)
                if known is not None and _strip_docs(known) != _strip_docs(node):
                    raise SchemaError(f"type {full!r} is defined in {self._origins[full]} and, "
                                      f"differently, in {p}")
                self._define(full, node, p)
        for p, raw in raws.items():
            schema = Schema.from_json(inline_references(raw, dict(self.definitions), p), p)
            self.add(schema, p.stem)

    def _define(self, full: str, node: Any, path: Path | None) -> None:
        self.definitions.setdefault(full, node)
        self._origins.setdefault(full, path)

    def add(self, schema: Schema, *aliases: str) -> None:
        """Register ``schema`` under its names and the given aliases."""
        for key in (schema.fullname, schema.name, *aliases):
            self._by_key.setdefault(key, schema)
        self.by_fingerprint[schema.fingerprint] = schema
        for full, node in named_types(schema.json).items():
            self._define(full, node, schema.path)

    def get(self, key: str) -> Schema | None:
        return self._by_key.get(key)

    def __getitem__(self, key: str) -> Schema:
        try:
            return self._by_key[key]
        except KeyError:
            known = ", ".join(sorted({s.fullname for s in self._by_key.values()}))
            raise SchemaError(f"no schema named {key!r} (known: {known})") from None

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def __iter__(self) -> Iterator[Schema]:
        seen: set[str] = set()
        for s in self._by_key.values():
            if s.fullname not in seen:
                seen.add(s.fullname)
                yield s


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise SchemaError(f"schema file {str(path)!r} not found") from None
    except json.JSONDecodeError as exc:
        raise SchemaError(f"schema file {str(path)!r} is not valid JSON: {exc}") from exc


def type_name(node: Mapping[str, Any], ns: str | None) -> tuple[str, str | None]:
    """Full name of the named type ``node`` defined inside namespace ``ns``, and its namespace.

    As in the Avro specification ("Names"): a dotted name is a full name; otherwise the
    ``namespace`` attribute, if present, else the enclosing namespace, qualifies it. The empty
    string (or null) is the null namespace.

    Examples
    --------
    >>> type_name({"name": "Point"}, "geo"), type_name({"name": "a.b.C"}, "geo")
    (('geo.Point', 'geo'), ('a.b.C', 'a.b'))
    >>> type_name({"name": "Point", "namespace": ""}, "geo")
    ('Point', None)
    """
    name = str(node["name"])
    if "." in name:
        return name, name.rpartition(".")[0]
    space = (node.get("namespace") or None) if "namespace" in node else ns
    return (f"{space}.{name}" if space else name), space


def resolve_name(name: str, ns: str | None, known: Container[str]) -> str | None:
    """The full name a reference ``name`` inside namespace ``ns`` denotes, if ``known``.

    An unqualified name is looked up in the enclosing namespace, then in the null namespace
    (as the Java and Python Avro libraries do).
    """
    if "." not in name and ns and f"{ns}.{name}" in known:
        return f"{ns}.{name}"
    return name if name in known else None


def named_types(schema: Any, ns: str | None = None) -> dict[str, Any]:
    """Every named type (record, enum, fixed) defined inside ``schema``, by full name.

    Each definition is returned with its short name and an explicit ``namespace`` (``""`` for
    the null namespace), so it means the same wherever it is inlined.

    Examples
    --------
    >>> named_types({"type": "record", "name": "R", "namespace": "n", "fields": [
    ...     {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A"]}}]})["n.E"]
    {'type': 'enum', 'name': 'E', 'symbols': ['A'], 'namespace': 'n'}
    """
    out: dict[str, Any] = {}
    _collect_definitions(schema, ns, out, None)
    return out


def _collect_definitions(node: Any, ns: str | None, out: dict[str, Any], path: Path | None) -> None:
    """Record every named type (record, enum, fixed) defined inside ``node``."""
    if isinstance(node, list):
        for item in node:
            _collect_definitions(item, ns, out, path)
    elif isinstance(node, dict):
        kind = node.get("type")
        if kind in ("record", "error", "enum", "fixed") and "name" in node:
            full, ns = type_name(node, ns)
            out.setdefault(full, {**node, "name": full.rpartition(".")[2], "namespace": ns or ""})
        for key in ("fields", "items", "values"):
            if key in node:
                _collect_definitions(node[key], ns, out, path)
        if isinstance(kind, (dict, list)):
            _collect_definitions(kind, ns, out, path)


def _strip_docs(node: Any) -> Any:
    if isinstance(node, list):
        return [_strip_docs(x) for x in node]
    if isinstance(node, dict):
        return {k: _strip_docs(v) for k, v in node.items() if k != "doc"}
    return node


def inline_references(
    schema: Any, defs: dict[str, Any], path: Path | None = None, ns: str | None = None,
    seen: set[str] | None = None,
) -> Any:
    """Return ``schema`` with references to named types of ``defs`` inlined at first use.

    Later uses stay references, so the result is a valid self-contained Avro schema.

    Examples
    --------
    >>> defs = {"geo.Point": {"type": "record", "name": "Point", "namespace": "geo",
    ...                       "fields": [{"name": "x", "type": "double"}]}}
    >>> s = {"type": "record", "name": "R", "fields": [
    ...     {"name": "a", "type": "geo.Point"}, {"name": "b", "type": "geo.Point"}]}
    >>> out = inline_references(s, defs)
    >>> out["fields"][0]["type"]["name"], out["fields"][1]["type"]
    ('Point', 'geo.Point')
    """
    seen = set() if seen is None else seen
    if isinstance(schema, str):
        if schema in PRIMITIVES:
            return schema
        name = resolve_name(schema, ns, seen | defs.keys())
        if name is None:
            where = f" in {path}" if path else ""
            raise SchemaError(f"unknown type {schema!r}{where}")
        if name in seen:  # defined already: a reference is all Avro allows now
            return name
        return inline_references(defs[name], defs, path, ns, seen)
    if isinstance(schema, list):
        return [inline_references(s, defs, path, ns, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    out = dict(schema)
    if kind in ("record", "error", "enum", "fixed") and "name" in schema:
        full, ns = type_name(schema, ns)
        seen.add(full)
    if kind in ("record", "error"):
        out["fields"] = [
            {**f, "type": inline_references(f["type"], defs, path, ns, seen)}
            for f in schema.get("fields", [])
        ]
    elif kind == "array":
        out["items"] = inline_references(schema["items"], defs, path, ns, seen)
    elif kind == "map":
        out["values"] = inline_references(schema["values"], defs, path, ns, seen)
    elif isinstance(kind, (dict, list)) or (isinstance(kind, str) and kind not in PRIMITIVES
                                            and kind not in ("enum", "fixed")):
        return inline_references(kind, defs, path, ns, seen)
    return out
