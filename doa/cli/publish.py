"""``doa publish``: JSON lines into a stream, every line checked before anything is sent."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import click
import orjson

from doa.cli.console import err, say
from doa.cli.options import broker_option, need_broker, topology_option
from doa.errors import DoaError

__all__ = ["publish_cmd"]


@click.command("publish")
@click.argument("stream")
@broker_option
@topology_option
@click.option("--file", "-f", "path", type=click.Path(exists=True, dir_okay=False,
                                                      allow_dash=True),
              default="-", help="JSON lines to publish (default: stdin).")
@click.option("--timestamp-field", default=None, metavar="FIELD",
              help="Each record's timestamp (its event time, ms since the epoch) is this "
                   "top-level field of its line, an integer in every line (default: the wall "
                   "clock when sent). A field the stream's schema does not have is taken out "
                   "of the record: it only carries the time.")
def publish_cmd(stream: str, broker: str | None, topology: str | None, path: str,
                timestamp_field: str | None) -> None:
    """Publish JSON lines into a stream. Every line is validated against the stream's schema
    and the broker's record size limit first: nothing is sent unless all are valid (an error
    names the line, and the field or the size, and the stream). A float or double field takes
    NaN and the infinities as the strings "NaN", "Infinity" and "-Infinity" (what `doa
    subscribe` writes, as Avro's JSON encoding does).
    Ctrl-C while sending stops before the next record and says how many were sent and
    acknowledged (waiting at most $DOA_SHUTDOWN_GRACE_S for the broker); twice: at once."""
    from doa.cli.interrupt import Sending
    from doa.client import Publisher
    from doa.cluster.reach import check_reachable
    from doa.collect.nonfinite import restorer
    from doa.engines.outage import shutdown_grace_s
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)
    grace_s = shutdown_grace_s()
    t = load_topology(topology) if topology else None
    with Publisher(stream, broker=address, topology=t, name="doa-publish") as pub:
        stream_in = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
        with stream_in:
            records = _valid_lines(stream_in, pub.check, timestamp_field,  # schema, size, time
                                   timestamp_field in _fields(pub.codec.schema.json),
                                   restorer(pub.codec.schema.json))
        sending = Sending(stream, len(records), grace_s, lambda: pub.acknowledged,
                          say=say)
        with sending.interruptible():
            for record, timestamp_ms in records:
                if sending.interrupted:
                    break
                pub.send(record, timestamp_ms)
                sending.sent += 1
            try:
                pub.flush(sending.remaining_s() if sending.interrupted else 60.0)
            except DoaError:
                if not sending.interrupted:
                    raise
            if sending.interrupted:
                sending.report(pub.acknowledged)
                if pub.acknowledged < sending.sent:
                    sending.exit_now()
                raise SystemExit(sending.exit_code)
    n = pub.acknowledged
    err.print(f"published {n} record{'s' if n != 1 else ''} to {stream} (acknowledged)")


def _fields(schema: Any) -> set[str]:
    """The top-level field names of a record schema (its JSON form)."""
    return {f["name"] for f in schema.get("fields", [])} if isinstance(schema, dict) else set()


def _valid_lines(lines: Any, encode: Any, timestamp_field: str | None = None,
                 carried: bool = True, restore: Restore | None = None
                 ) -> list[tuple[dict[str, Any], int | None]]:
    """The JSON objects of ``lines``, each checked by ``encode``, with its timestamp (see
    :func:`_timestamp`; ``carried``: the timestamp field is one of the record's, else it is
    taken out of it); else one error naming every bad line, one line each (the first
    ``SHOWN_BAD``, then how many more; blank lines are skipped but counted). ``restore``
    (:func:`doa.collect.nonfinite.restorer` of the stream's schema) turns ``"NaN"``,
    ``"Infinity"`` and ``"-Infinity"`` of float and double fields into floats.

    >>> _valid_lines(['{"id": 1, "ts": 1700000000000}'], lambda r: None, "ts", carried=False)
    [({'id': 1}, 1700000000000)]
    """
    records: list[tuple[dict[str, Any], int | None]] = []
    bad: list[str] = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                records.append(_record(line, number, encode, timestamp_field, carried,
                                       restore))
            except DoaError as exc:
                bad.append(str(exc).removesuffix(NOTHING))
    if len(bad) == 1:
        raise DoaError(bad[0] + NOTHING)
    if bad:
        more = f"\n  and {len(bad) - SHOWN_BAD} more" if len(bad) > SHOWN_BAD else ""
        raise DoaError(f"{len(bad)} bad lines{NOTHING}:\n  "
                       + "\n  ".join(bad[:SHOWN_BAD]) + more)
    return records


NOTHING, SHOWN_BAD = "; nothing was published", 20  # and the bad lines an error shows
Restore = Callable[[Any], Any]  # a record as read from JSON -> its NaN and infinities restored


def _record(line: str, number: int, encode: Any, timestamp_field: str | None = None,
            carried: bool = True, restore: Restore | None = None
            ) -> tuple[dict[str, Any], int | None]:
    """Line ``number``'s JSON object, its non-finite floats restored by ``restore`` (see
    :func:`_valid_lines`), checked by ``encode`` (without ``timestamp_field`` unless
    ``carried``), and its timestamp; else a one-line error.

    >>> _record('{"t": 20.5, "h": NaN}', 3, None)
    Traceback (most recent call last):
    doa.errors.DoaError: line 3, column 18: not valid JSON (NaN: JSON has no NaN or Infinity, \
Python's json.dumps writes them): write it as the string "NaN" (a float or double field \
takes "NaN", "Infinity", "-Infinity"), null for an optional field, or leave the record out
    """
    try:
        record = orjson.loads(line.rstrip("\r\n"))
    except orjson.JSONDecodeError as exc:  # its own "line 1" would be a second number
        nan = re.match(r"-?(NaN|Infinity)", exc.doc[exc.pos - exc.doc[:exc.pos].endswith("-"):])
        why = f"{exc.msg})" if not nan else (
            f"{nan[0]}: JSON has no NaN or Infinity, Python's json.dumps writes them): write it "
            f"as the string \"{nan[0]}\" (a float or double field takes \"NaN\", \"Infinity\", "
            "\"-Infinity\"), null for an optional field, or leave the record out")
        raise DoaError(f"line {number}, column {exc.colno}: not valid JSON ({why}") from exc
    if not isinstance(record, dict):
        raise DoaError(f"line {number}: expected a JSON object, got {type(record).__name__}")
    timestamp = _timestamp(record, timestamp_field, number)
    if timestamp_field is not None and not carried:
        del record[timestamp_field]
    if restore is not None:
        from doa.collect.nonfinite import has_form

        restore = restore if has_form(line) else None  # no walk for a line without one
        record = restore(record) if restore is not None else record
    try:
        encode(record)
    except DoaError as exc:
        raise DoaError(f"line {number}: {_exact(line, encode, exc, restore)}") from exc
    return record, timestamp


def _timestamp(record: dict[str, Any], field: str | None, number: int) -> int | None:
    """``record``'s ``field``, its timestamp in ms (None without a field: the wall clock);
    an error naming line ``number`` unless it is an integer of at least 0.

    >>> _timestamp({"ts": 1700000000000}, "ts", 1)
    1700000000000
    >>> _timestamp({"ts": 1700000000000}, None, 1) is None
    True
    >>> _timestamp({"ts": "noon"}, "ts", 3)
    Traceback (most recent call last):
    doa.errors.DoaError: line 3: --timestamp-field ts: expected ms since the epoch \
(an integer >= 0), got str 'noon'; nothing was published
    >>> _timestamp({"time": 1}, "ts", 4)
    Traceback (most recent call last):
    doa.errors.DoaError: line 4: --timestamp-field ts: expected ms since the epoch \
(an integer >= 0), the line has no field 'ts'; nothing was published
    """
    if field is None:
        return None
    value = record.get(field)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    got = (f"the line has no field {field!r}" if field not in record
           else f"got {type(value).__name__} {value!r}")
    raise DoaError(f"line {number}: --timestamp-field {field}: expected ms since the epoch "
                   f"(an integer >= 0), {got}{NOTHING}")


def _exact(line: str, encode: Any, exc: DoaError, restore: Restore | None = None) -> DoaError:
    """The error of ``line`` as the user wrote it: orjson reads an integer beyond 64 bits as a
    float (``1e+23``), so an error naming such a value comes again from Python's own reader
    (``got int 99999999999999999999999``, not ``got float 1e+23``); ``restore`` as in
    :func:`_record`."""
    import json

    try:
        record = json.loads(line)
        encode(restore(record) if restore is not None else record)
    except DoaError as exact:
        return exact
    except ValueError:
        pass
    return exc
