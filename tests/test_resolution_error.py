"""A record of a version its reader cannot resolve: the dead letter names the field, in doa's words.

The walkthrough's case: ``hour`` went from ``int`` (v2) to ``double`` (v3); a node still on v2
dead-lettered every v3 record with ``cannot decode (resolution): SchemaResolutionError: Schema
mismatch: double is not int``: no field, and the library's words. Now the message says
``field RideRequest.hour: the writer's double cannot be read as the reader's int``.
:func:`doa.wire.explain.unreadable`, which finds it, is checked against avro's own checker.
"""

from __future__ import annotations

from typing import Any

import pytest

from doa.errors import DecodeError
from doa.wire.codec import Codec
from doa.wire.schema import Schema
from tests.test_compat import CHANGES, OLD, avro_says_compatible, resolves


def ride(hour: str, *extra: dict[str, Any]) -> Schema:
    return Schema.from_json({"type": "record", "name": "RideRequest", "namespace": "rides",
                             "fields": [{"name": "ride_id", "type": "string"},
                                        {"name": "zone", "type": "string"},
                                        {"name": "hour", "type": hour}, *extra]})


def reader_error(writer: Schema, reader: Schema, record: dict[str, Any]) -> str:
    data = Codec("ride_requests", writer).encode(record)
    with pytest.raises(DecodeError) as caught:
        Codec("ride_requests", reader, history=[writer]).decode(data)
    assert caught.value.reason == "resolution"
    return str(caught.value)


def test_the_walkthrough_case_names_the_field_and_both_types() -> None:
    v2, v3 = ride("int"), ride("double")
    message = reader_error(v3, v2, {"ride_id": "r1", "zone": "z1", "hour": 7.5})
    assert message.startswith("stream 'ride_requests': cannot decode (resolution): field "
                              "RideRequest.hour: the writer's double cannot be read as the "
                              "reader's int (written with schema "
                              f"{v3.fingerprint.hex()}, read with {v2.fingerprint.hex()}"), message
    assert "\n" not in message
    assert "SchemaResolutionError" not in message and "Schema mismatch" not in message
    # the other way round resolves: int is promoted to double (BACKWARD compatible)
    data = Codec("ride_requests", v2).encode({"ride_id": "r1", "zone": "z1", "hour": 7})
    assert Codec("ride_requests", v3, history=[v2]).decode(data)["hour"] == 7.0


def test_only_what_the_record_holds_is_named() -> None:
    """A union narrowed: a null resolves, a long does not; an enum: only the symbol lost."""
    wide = ride("int", {"name": "tip", "type": ["null", "long"]},
                {"name": "kind", "type": {"type": "enum", "name": "Kind",
                                          "symbols": ["CAR", "BIKE", "BOAT"]}})
    narrow = ride("int", {"name": "tip", "type": ["null", "int"]},
                  {"name": "kind", "type": {"type": "enum", "name": "Kind",
                                            "symbols": ["CAR", "BIKE"]}})
    base = {"ride_id": "r1", "zone": "z1", "hour": 3}
    data = Codec("ride_requests", wide).encode({**base, "tip": None, "kind": "CAR"})
    assert Codec("ride_requests", narrow, history=[wide]).decode(data)["kind"] == "CAR"
    message = reader_error(wide, narrow, {**base, "tip": 5, "kind": "CAR"})
    assert "field RideRequest.tip: the writer's long cannot be read as the reader's one of " \
           "[null, int]" in message, message
    assert "kind" not in message.partition(" (written")[0]
    message = reader_error(wide, narrow, {**base, "tip": None, "kind": "BOAT"})
    assert "field RideRequest.kind: the writer's symbol 'BOAT' is not one of the reader's " \
           "Kind ['CAR', 'BIKE']" in message, message


def test_a_field_the_writer_lacks_is_named() -> None:
    v1 = ride("int")
    v2 = ride("int", {"name": "tip", "type": "double"})  # no default
    message = reader_error(v1, v2, {"ride_id": "r1", "zone": "z1", "hour": 3})
    assert "field RideRequest.tip: the writer's RideRequest has no field tip and the reader's " \
           "has no default" in message, message


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_unreadable_agrees_with_avro_both_ways(change: str) -> None:
    """Nothing found exactly when avro's checker calls the pair compatible (and then fastavro
    resolves a record); what is found names a field of the change."""
    from doa.wire.explain import unreadable

    new = CHANGES[change]
    for writer, reader in ((OLD, new), (new, OLD)):
        found = unreadable(writer, reader, str(reader["name"]))
        assert (found == []) == avro_says_compatible(reader=reader, writer=writer), found
        if not found:
            resolves(reader=reader, writer=writer)
        for path, why in found:
            assert path.startswith(str(reader["name"])) and "the writer's" in why, (path, why)
