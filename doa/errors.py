"""Errors raised by doa, each naming what went wrong and where.

Every error carries the names a person needs to find the problem: the stream, the field path,
the node, the offset. ``str(error)`` is one line meant for a terminal.
"""

from __future__ import annotations

from collections.abc import Sequence


class DoaError(Exception):
    """Base class of every error doa raises on purpose."""


class SchemaError(DoaError):
    """A schema file is missing, does not parse, or references an unknown type."""


UNKNOWN_FIELD = "no such field"  # what doa.wire.explain "expects" of a field a record has not


class EncodeError(DoaError):
    """A record does not match its stream's schema; nothing was produced.

    Examples
    --------
    >>> e = EncodeError("readings", "reading.location.lat", "double", "north")
    >>> str(e)
    "stream 'readings': field reading.location.lat expected double, got str 'north'"
    >>> str(EncodeError("readings", "reading.n", "int", 2**40)).split(", ")[1]
    "got int 1099511627776 (out of the int's 32-bit range)"
    >>> print(EncodeError("readings", "reading.x", UNKNOWN_FIELD + " (record reading has: ts)", 3))
    stream 'readings': field reading.x is not in the schema (record reading has: ts), got int 3
    """

    def __init__(self, stream: str, path: str, expected: str, value: object,
                 detail: str = "") -> None:
        self.stream = stream
        self.path = path
        self.expected = expected
        self.value = value
        self.detail = detail
        got = "missing" if value is _MISSING else f"{type(value).__name__} {_short(value)}"
        if expected.startswith(UNKNOWN_FIELD):  # a field the schema has not: no "expected"
            msg = (f"stream {stream!r}: field {path} is not in the schema"
                   f"{expected[len(UNKNOWN_FIELD):]}, got {got}")
        else:
            msg = f"stream {stream!r}: field {path} expected {expected}, got {got}"
            if _out_of_range(expected, value):
                msg += f" (out of the {expected}'s {_BITS[expected]}-bit range)"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class DecodeError(DoaError):
    """Bytes that cannot be decoded as a record of a stream.

    ``reason`` is a short token: ``"bad-marker"``, ``"unknown-fingerprint"`` (the header);
    ``"truncated"``, ``"trailing-bytes"``, ``"varint"``, ``"int-range"``, ``"union-index"``,
    ``"enum-index"``, ``"length"``, ``"block-size"``, ``"boolean"``, ``"utf8"``,
    ``"duplicate-key"``, ``"too-deep"``, ``"logical"`` (a body that is not well-formed Avro,
    see :mod:`doa.wire.fastcheck`); ``"resolution"`` (an old version's value that does not fit the
    current schema); ``"corrupt"`` (anything else).

    Examples
    --------
    >>> e = DecodeError("readings", "union-index", "union index -2 at byte 41")
    >>> e.reason, str(e)
    ('union-index', "stream 'readings': cannot decode (union-index): union index -2 at byte 41")
    """

    def __init__(self, stream: str, reason: str, message: str) -> None:
        self.stream = stream
        self.reason = reason
        super().__init__(f"stream {stream!r}: cannot decode ({reason}): {message}")


class CompatibilityError(DoaError):
    """A schema change breaks compatibility with a previous version."""

    def __init__(self, stream: str, level: str, problems: Sequence[str],
                 what: str | None = None, fix: str = "") -> None:
        self.stream = stream
        self.level = level
        self.problems = list(problems)
        what = what or f"new schema is not {level}-compatible"
        super().__init__(f"stream {stream!r}: {what}: " + "; ".join(problems) + fix)


class TopologyError(DoaError):
    """A topology is wired wrongly; ``problems`` lists every mistake found."""

    def __init__(self, topology: str, problems: Sequence[str]) -> None:
        self.topology = topology
        self.problems = list(problems)
        n = len(self.problems)
        head = f"topology {topology!r} has {n} problem{'s' if n != 1 else ''}: "
        super().__init__(head + "; ".join(self.problems))


class StepError(DoaError):
    """A node's step returned something the runtime cannot use."""


class Unacknowledged(DoaError):
    """Records a :class:`doa.Publisher` sent that the broker did not acknowledge.

    ``ids`` are their event ids (what ``send`` returned) and ``records`` the records
    themselves, in the order they were sent (None for ``send_raw``'s bytes): resend them to
    lose nothing (a record the broker wrote without its acknowledgement reaching us is then
    there twice, with the two ids).

    Examples
    --------
    >>> e = Unacknowledged("stream 'rides': 1 of 2 records not acknowledged", [b"i" * 16],
    ...                    [{"ride_id": "r2"}])
    >>> e.records, len(e.ids)
    ([{'ride_id': 'r2'}], 1)
    """

    def __init__(self, message: str, ids: Sequence[bytes | None],
                 records: Sequence[object]) -> None:
        super().__init__(message)
        self.ids = list(ids)
        self.records = list(records)


def first_line(exc: BaseException | None, *, kind: bool = False) -> str:
    """One line saying why ``exc`` happened, for a message or a log line.

    Parameters
    ----------
    exc : the exception (None: ``"unknown reason"``, e.g. a failed future that kept none)
    kind : start the line with the exception's class name, ``Kind: text``, once: not when
        the text already starts with it (kafka-python's errors put it there themselves)

    Returns
    -------
    The first line of ``str(exc)``, else (no text, or an empty first line) the class name.

    Examples
    --------
    >>> first_line(ValueError("bad header\\nat byte 3")), first_line(TimeoutError())
    ('bad header', 'TimeoutError')
    >>> first_line(ValueError("bad"), kind=True), first_line(None)
    ('ValueError: bad', 'unknown reason')
    >>> from kafka.errors import KafkaTimeoutError  # its text starts with its class name
    >>> first_line(KafkaTimeoutError("Timeout after waiting for 5.0 secs."), kind=True)
    'KafkaTimeoutError: Timeout after waiting for 5.0 secs.'
    """
    if exc is None:
        return "unknown reason"
    name, text = type(exc).__name__, str(exc)
    line = text.splitlines()[0] if text else ""
    if not line or (kind and line.startswith(name)):
        return line or name
    return f"{name}: {line}" if kind else line


class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


_MISSING = _Missing()
MISSING: object = _MISSING


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_BITS = {"int": 32, "long": 64}


def _out_of_range(expected: str, value: object) -> bool:
    """Whether ``value`` is an integer beyond the ``int``/``long`` it was given for."""
    if expected not in _BITS or type(value) is not int:
        return False
    bound = 2 ** (_BITS[expected] - 1)
    return not -bound <= value < bound
