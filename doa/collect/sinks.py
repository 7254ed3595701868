"""Where collected rows go: JSON lines, CSV or Parquet, written as they come.

A sink writes to ``PATH.partial`` and renames it to ``PATH`` when closed, so a failed or
interrupted collect leaves no half file under the name a script waits for. ``-`` is standard
output (JSON lines and CSV).

Values in text formats: bytes as hex (as doa prints ids), times in ISO 8601, records, maps
and lists as JSON. In CSV a null is an empty cell and a boolean is ``true``/``false``; JSON
has no NaN, so a NaN or infinite float is the string ``"NaN"``, ``"Infinity"`` or
``"-Infinity"`` in JSON (lines, and CSV cells of records, maps and lists), as in Avro's JSON
encoding (:mod:`doa.collect.nonfinite`; ``doa publish`` reads them back); a CSV cell of a float
is ``nan``, ``inf`` or ``-inf``. Parquet keeps every Avro type (:mod:`doa.collect.arrow`)
and is written in row groups of ``rows_per_group`` rows while reading, so memory stays
bounded whatever the stream's length.

Examples
--------
>>> import io
>>> buf = io.StringIO()
>>> write_csv_rows(buf, ["n", "tags", "raw"], [{"n": 1.5, "tags": {"a": True}, "raw": b"\\x01"},
...                                            {"n": None, "tags": {}, "raw": b""}])
>>> print(buf.getvalue(), end="")
n,tags,raw
1.5,"{""a"":true}",01
,{},
>>> format_of("train.parquet", None), format_of("-", None)
('parquet', 'jsonl')
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import os
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import orjson

from doa.collect.nonfinite import dumps
from doa.errors import DoaError

FORMATS = ("jsonl", "csv", "parquet")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
             ".parquet": "parquet", ".pq": "parquet"}
ROWS_PER_GROUP = 65_536


def format_of(path: str, given: str | None) -> str:
    """The format to write: ``given``, else from the file's suffix (standard output: JSON
    lines); a one-line error when neither says, or when they disagree.

    >>> format_of("x.parquet", "jsonl")                               # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: --format jsonl contradicts --out x.parquet (a .parquet file is ...
    """
    suffix = Path(path).suffix.lower() if path != "-" else ""
    found = _SUFFIXES.get(suffix)
    if given:
        if given not in FORMATS:
            raise DoaError(f"format {given!r}: expected one of {', '.join(FORMATS)}")
        if found is not None and found != given:
            raise DoaError(f"--format {given} contradicts --out {path} (a {suffix} file is "
                           f"{found}); name the file .{given}, or leave --format out")
        return given
    if path == "-":
        return "jsonl"
    if found is None:
        raise DoaError(f"{path}: cannot tell the format from its suffix; name it .jsonl, .csv "
                       "or .parquet, or give --format")
    return found


def check_out(path: str) -> None:
    """A one-line error, before anything is read, when ``path`` cannot be written: its
    directory is missing or not a directory, it is a directory itself, or the file it is
    written to first (``PATH.partial``, created and removed again) cannot be created.

    >>> check_out("nodir/x.jsonl")
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: directory 'nodir' does not exist (for --out nodir/x.jsonl)
    """
    if path == "-":
        return
    target = Path(path)
    parent = target.parent
    if not parent.exists():
        raise DoaError(f"directory {str(parent)!r} does not exist (for --out {path})")
    if not parent.is_dir():
        raise DoaError(f"{str(parent)!r} is not a directory (for --out {path})")
    if target.is_dir():
        raise DoaError(f"{path!r} is a directory; --out names the file to write")
    partial = f"{path}.partial"
    existed = os.path.exists(partial)
    with _writing(path):  # try: a read-only or virtual file system (/proc) says so only here
        open(partial, "ab").close()
    if not existed:
        os.remove(partial)


@contextlib.contextmanager
def _writing(path: str) -> Iterator[None]:
    """A one-line :class:`DoaError` naming ``--out`` for an ``OSError`` writing ``path``.

    >>> with _writing("/proc/x.jsonl"):
    ...     raise PermissionError(13, "Permission denied", "/proc/x.jsonl.partial")
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: cannot write /proc/x.jsonl (--out): Permission denied
    """
    try:
        yield
    except OSError as exc:
        raise DoaError(f"cannot write {path} (--out): {exc.strerror or exc}") from None


def _default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)  # Decimal, and anything orjson does not know


def json_line(row: Mapping[str, Any]) -> bytes:
    """One row as a JSON line.

    >>> json_line({"id": b"\\xab", "at": datetime.datetime(2024, 1, 1), "x": float("nan")})
    b'{"id":"ab","at":"2024-01-01T00:00:00","x":"NaN"}\\n'
    """
    return dumps(row, default=_default, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS)


def csv_cell(value: Any) -> Any:
    """One value as a CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return dumps(value, default=_default, option=orjson.OPT_NON_STR_KEYS).decode()
    return str(value)


def write_csv_rows(f: IO[str], columns: Sequence[str], rows: Iterable[Mapping[str, Any]],
                   header: bool = True) -> None:
    """Write ``rows`` (their ``columns``, in order) as CSV to ``f``."""
    writer = csv.writer(f, lineterminator="\n")
    if header:
        writer.writerow(columns)
    writer.writerows([csv_cell(row.get(c)) for c in columns] for row in rows)


class Sink:
    """Rows into a file of one format; use it in a ``with`` block (see the module docstring).

    Parameters
    ----------
    path : the file (``-``: standard output, text formats only)
    fmt : ``jsonl``, ``csv`` or ``parquet``
    columns : the columns, in order (CSV's header; the rows' keys)
    arrow : for Parquet, a function returning the Arrow schema and a row converter (or None)
    rows_per_group : Parquet rows per row group (and rows held in memory at most)
    """

    def __init__(self, path: str, fmt: str, columns: Sequence[str],
                 arrow: Callable[[], tuple[Any, Callable[[Any], Any] | None]] | None = None,
                 rows_per_group: int = ROWS_PER_GROUP) -> None:
        self.path = path
        self.fmt = fmt
        self.columns = list(columns)
        self.rows = 0
        self._arrow = arrow
        self._group = rows_per_group
        self._pending: list[Any] = []
        self._writer: Any = None
        self._schema: Any = None
        self._convert: Callable[[Any], Any] | None = None
        self._file: IO[Any] | None = None
        self._partial = f"{path}.partial"

    def __enter__(self) -> Sink:
        check_out(self.path)
        with _writing(self.path):
            self._open()
        return self

    def _open(self) -> None:
        if self.path == "-":
            if self.fmt == "parquet":
                raise DoaError("Parquet cannot go to standard output; give --out FILE.parquet")
            self._file = sys.stdout.buffer if self.fmt == "jsonl" else sys.stdout
        elif self.fmt == "parquet":
            if self._arrow is None:
                raise DoaError(f"{self.path}: no Arrow schema for these rows")
            pq = _parquet()
            self._schema, self._convert = self._arrow()
            self._writer = pq.ParquetWriter(self._partial, self._schema)
        else:
            self._file = (open(self._partial, "wb") if self.fmt == "jsonl" else  # noqa: SIM115
                          open(self._partial, "w", newline="", encoding="utf-8"))  # noqa: SIM115
        if self.fmt == "csv":
            assert self._file is not None
            write_csv_rows(self._file, self.columns, ())

    def write(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Write ``rows`` (Parquet: buffered up to a row group)."""
        self.rows += len(rows)
        if self.fmt == "jsonl":
            assert self._file is not None
            self._file.write(b"".join(map(json_line, rows)))
        elif self.fmt == "csv":
            assert self._file is not None
            write_csv_rows(self._file, self.columns, rows, header=False)
        else:
            self._pending.extend(rows)
            while len(self._pending) >= self._group:
                self._flush(self._pending[:self._group])
                del self._pending[:self._group]

    def write_table(self, table: Any) -> None:
        """Write a ``pyarrow.Table`` whose schema is the sink's (Parquet only)."""
        if self.fmt != "parquet":
            raise DoaError(f"{self.path}: a table goes to Parquet only")
        self.rows += table.num_rows
        self._writer.write_table(table, row_group_size=self._group)

    def _flush(self, rows: list[Any]) -> None:
        from doa.collect.arrow import pyarrow

        if self._convert is not None:
            rows = [self._convert(r) for r in rows]
        table = pyarrow().Table.from_pylist(rows, schema=self._schema)
        self._writer.write_table(table, row_group_size=max(1, len(rows)))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            with _writing(self.path):  # a full disk says so here, when buffers are written
                if exc is None and self._pending:
                    self._flush(self._pending)
                if self._writer is not None:
                    self._writer.close()
                if self._file is not None and self.path != "-":
                    self._file.close()
                elif self._file is not None:
                    self._file.flush()
                if exc is None and self.path != "-":
                    os.replace(self._partial, self.path)
        except BaseException:
            self._discard()
            raise
        if exc is not None:
            self._discard()

    def _discard(self) -> None:
        if self.path != "-" and os.path.exists(self._partial):
            os.remove(self._partial)


def _parquet() -> Any:
    from doa.collect.arrow import pyarrow

    pyarrow()
    import pyarrow.parquet as pq

    return pq
