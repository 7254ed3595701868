"""What a kernel node copies from its input records to its output: the lines of
:meth:`doa.kernels.node.KernelSpec.copy_problems` (a copied field the output schema lacks, or
cannot hold), and whether an output type holds an input type's values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from doa.node import shown_type

__all__ = ["holds", "lacking_line", "unheld_line"]

# Avro's promotions (a writer's values a reader of the other type takes): an int is a long,
# a float, a double...
_PROMOTED = {"int": {"long", "float", "double"}, "long": {"float", "double"},
             "float": {"double"}}


def holds(output: Any, given: Any) -> bool:
    """Whether a field of Avro type ``output`` holds the values of a field of type ``given``:
    False only when no value but null could go (the types are named, primitive and apart);
    a named or complex type is not judged (True).

    >>> holds("double", "string"), holds(["null", "double"], "int"), holds("string", "string")
    (False, True, True)
    >>> holds("double", ["null", "string"]), holds("long", {"type": "enum", "name": "E"})
    (False, True)
    """
    branches = [output] if not isinstance(output, list) else output
    values = [given] if not isinstance(given, list) else given
    if not all(isinstance(t, str) for t in [*branches, *values]):
        return True
    takes = set(branches)
    named = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
    if not takes <= named or not set(values) <= named:
        return True  # a named type (a record, an enum): not judged here
    return any(v in takes or _PROMOTED.get(v, set()) & takes for v in values if v != "null") \
        or values == ["null"]


def unheld_line(node: str, source: tuple[str, str | None], target: tuple[str, str | None],
                name: str, given: Any, output: Any) -> str:
    """The line for a copied field whose output type cannot hold its input type's values.

    >>> print(unheld_line("featurize", ("txns", "walk.Txn"), ("feats", "walk.Feats"),
    ...                   "risk", "string", "double"))  # doctest: +NORMALIZE_WHITESPACE
    kernel 'featurize' copies field 'risk' of its input stream 'txns' (walk.Txn), a string, to
    its output: stream 'feats' (walk.Feats) has it as double, which cannot hold it, so every
    record would be a dead letter; give both the same type, or leave it out of select
    """
    (stream, schema), (out, out_schema) = source, target
    return (f"kernel {node!r} copies field {name!r} of its input stream {stream!r} ({schema}), "
            f"a {shown_type(given)}, to its output: stream {out!r} ({out_schema}) has it as "
            f"{shown_type(output)}, which cannot hold it, so every record would be a dead "
            "letter; give both the same type, or leave it out of select")


def lacking_line(node: str, source: tuple[str, str | None], target: tuple[str, str | None],
                 lacking: Sequence[str], kept: list[str], selected: bool) -> str:
    """The line for copied fields the output lacks: ``lacking`` the copied fields the output
    has not, ``kept`` those it has, ``selected`` whether ``select`` names them."""
    quoted = [repr(f) for f in lacking]
    names = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} and {quoted[-1]}"
    (stream, schema), (out, out_schema) = source, target
    missing = (f"output fields {names} are not fields" if len(lacking) > 1
               else f"output field {names} is not a field")
    fix = (f"or leave {'them' if len(lacking) > 1 else 'it'} out of select" if selected
           else f"or give the kernel select={kept!r} (the input fields to copy)")
    return (f"kernel {node!r} copies {'the selected' if selected else 'every'} field"
            f"{'s' if selected else ''} of its input stream {stream!r} ({schema}) to its "
            f"output: {missing} of stream {out!r} ({out_schema}), so every record would be a "
            f"dead letter; add {names} to {out_schema}, with a default, {fix}")
