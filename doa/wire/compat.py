"""Schema evolution checks, as Confluent Schema Registry levels them, on ``avro.compatibility``.

BACKWARD: consumers using the new schema can read data written with the latest registered one.
FORWARD: consumers still on the latest registered schema can read data written with the new one.
FULL: both. Each ``_TRANSITIVE`` level asks the same of every registered version, not only the
latest; BACKWARD_TRANSITIVE is doa's default, since payloads of every version stay in the log.
NONE checks nothing.

Examples
--------
>>> old = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
>>> new = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"},
...                                                  {"name": "b", "type": "string"}]}
>>> incompatibilities(old, new)
["field 'R.b' (string) has no default: data written with the old schema has no value for it"]
>>> incompatibilities(old, new, "FORWARD")
[]

Against a history of registered versions, each problem names the version it breaks:

>>> v1 = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
>>> v2 = {"type": "record", "name": "R", "fields": []}
>>> v3 = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "string",
...                                                 "default": ""}]}
>>> against_history([(1, v1), (2, v2)], v3, "BACKWARD")
[]
>>> (problem,) = against_history([(1, v1), (2, v2)], v3)  # BACKWARD_TRANSITIVE, the default
>>> problem.partition(" (")[0]
"version 1: field 'R.n': reader type: string not compatible with writer type: long"
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityType,
    lookup_writer_field,
    schema_name_equals,
)
from avro.schema import ArraySchema, MapSchema, NamedSchema, RecordSchema, Schema, UnionSchema

from doa.errors import CompatibilityError, SchemaError
from doa.wire.explain import describe

LEVELS = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
          "FULL_TRANSITIVE", "NONE")
DEFAULT_LEVEL = "BACKWARD_TRANSITIVE"


def normalize_level(level: str) -> str:
    """``level`` in upper case, or :class:`ValueError` if it is not one of :data:`LEVELS`.

    >>> normalize_level("full_transitive")
    'FULL_TRANSITIVE'
    """
    upper = level.upper() if isinstance(level, str) else level
    if upper not in LEVELS:
        raise ValueError(f"unknown compatibility level {level!r}; use one of {', '.join(LEVELS)}")
    return str(upper)


def incompatibilities(old: Any, new: Any, level: str = "BACKWARD") -> list[str]:
    """Why ``new`` is not ``level``-compatible with ``old`` (JSON schemas); empty if it is.

    Between two schemas a ``_TRANSITIVE`` level is its plain level: there is one old version.
    """
    level = normalize_level(level).removesuffix("_TRANSITIVE")
    out: list[str] = []
    if level in ("BACKWARD", "FULL"):
        out += _check(reader=new, writer=old, direction="old")
    if level in ("FORWARD", "FULL"):
        out += [p for p in _check(reader=old, writer=new, direction="new") if p not in out]
    return out


def against_history(versions: Sequence[tuple[int, Any]], new: Any,
                    level: str = DEFAULT_LEVEL) -> list[str]:
    """Why ``new`` may not follow the registered ``versions`` (``(version, schema)``, oldest
    first) at ``level``; each problem starts with the version it breaks. Empty if it may.

    A plain level compares with the latest version only, a ``_TRANSITIVE`` one with every
    version, as Confluent Schema Registry does; NONE compares with none.
    """
    level = normalize_level(level)
    if level == "NONE" or not versions:
        return []
    compared = versions if level.endswith("_TRANSITIVE") else versions[-1:]
    return [f"version {number}: {problem}" for number, old in compared
            for problem in incompatibilities(old, new, level)]


def reading_later(versions: Sequence[tuple[int, Any]], reader: Any) -> list[str]:
    """Why ``reader``, an older registered version taken again, cannot read data written with
    the ``versions`` (``(version, schema)``) registered after it; each problem starts with the
    version. Empty if it reads them all.

    >>> v1 = {"type": "record", "name": "T", "fields": [{"name": "n", "type": "long"}]}
    >>> v2 = {"type": "record", "name": "T", "fields": []}
    >>> print(*reading_later([(2, v2)], v1))  # doctest: +ELLIPSIS
    version 2: field 'T.n' (long) has no default: data written with the later schema has no \
value for it ...
    """
    return [f"version {number}: {problem}" for number, writer in versions
            for problem in _check(reader=reader, writer=writer, direction="later")]


def check_compatible(stream: str, old: Any, new: Any, level: str = "BACKWARD") -> None:
    """Raise :class:`CompatibilityError` naming every breaking field, or return None."""
    found = incompatibilities(old, new, level)
    if found:
        raise CompatibilityError(stream, normalize_level(level), found)


def _parse(schema: Any) -> avro.schema.Schema:
    try:
        return avro.schema.parse(json.dumps(schema))
    except Exception as exc:
        raise SchemaError(f"invalid Avro schema: {exc}") from exc


def _check(reader: Any, writer: Any, direction: str) -> list[str]:
    """Every problem a reader of ``reader`` has with data written with ``writer``.

    avro's checker merges all its findings into one set of messages and one set of locations,
    which loses which message belongs where; so walk the records here, field by field, and ask
    the checker about each field's type on its own.
    """
    r, w = _parse(reader), _parse(writer)
    out: list[str] = []
    root = cast(RecordSchema, r).name if r.type == "record" else "<root>"
    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    _compare(r, w, root, direction, out, checker, set())
    return list(dict.fromkeys(out))


def _compare(reader: Schema, writer: Schema, path: str, direction: str, out: list[str],
             checker: ReaderWriterCompatibilityChecker, seen: set[tuple[int, int]]) -> None:
    rt, wt = reader.type, writer.type
    if rt == wt == "record" and _same_kind(reader, writer):
        if (id(reader), id(writer)) in seen:  # a recursive type, compared already
            return
        seen.add((id(reader), id(writer)))
        for rf in cast(RecordSchema, reader).fields:
            wf = lookup_writer_field(writer_schema=cast(RecordSchema, writer), reader_field=rf)
            sub = f"{path}.{rf.name}"
            if wf is not None:
                _compare(rf.type, wf.type, sub, direction, out, checker, seen)
            elif not rf.has_default:
                note = "" if direction == "old" else " (a field removed without a default " \
                    "breaks readers still on the old schema)"
                out.append(f"field {sub!r} ({describe(rf.type.to_json())}) has no default: data "
                           f"written with the {direction} schema has no value for it{note}")
        return
    if rt == wt == "array":
        items = cast(ArraySchema, reader).items, cast(ArraySchema, writer).items
        _compare(*items, f"{path}[]", direction, out, checker, seen)
        return
    if rt == wt == "map":
        values = cast(MapSchema, reader).values, cast(MapSchema, writer).values
        _compare(*values, f"{path}[]", direction, out, checker, seen)
        return
    if wt == "union":  # every branch the writer may have written must be readable
        for branch in cast(UnionSchema, writer).schemas:
            _compare(reader, branch, path, direction, out, checker, seen)
        return
    if rt == "union":  # the reader takes the writer's value with the branch of its type
        same = [b for b in cast(UnionSchema, reader).schemas if _same_kind(b, writer)]
        if same:
            _compare(same[0], writer, path, direction, out, checker, seen)
            return
    result = checker.get_compatibility(reader, writer)
    if result.compatibility is SchemaCompatibilityType.incompatible:
        what = f"field {path!r}" if "." in path or "[" in path else f"schema {path!r}"
        out.append(f"{what}: {'; '.join(sorted(result.messages))} (reading data written with "
                   f"the {direction} schema)")


def _same_kind(a: Schema, b: Schema) -> bool:
    if a.type != b.type:
        return False
    return a.type not in ("record", "enum", "fixed") or schema_name_equals(
        cast(NamedSchema, a), cast(NamedSchema, b))
