"""A required field missing because its key is misspelt: the error names the misspelling."""

from __future__ import annotations

import pytest

from doa.errors import EncodeError
from doa.wire.codec import Codec
from doa.wire.schema import Schema

READING = Schema.from_json({"type": "record", "name": "Reading", "fields": [
    {"name": "device", "type": "string"}, {"name": "temperature", "type": "double"},
    {"name": "where", "type": {"type": "record", "name": "Where", "fields": [
        {"name": "lat", "type": "double"}]}}]})


@pytest.mark.parametrize(("record", "message"), [
    ({"device": "d", "temprature": 21.5, "where": {"lat": 1.0}},
     "stream 'readings': field Reading.temperature expected double (the record has "
     "'temprature', which the schema does not: a typo?), got missing"),
    ({"device": "d", "temperature": 21.5, "where": {"latt": 1.0}},
     "stream 'readings': field Reading.where.lat expected double (the record has 'latt', "
     "which the schema does not: a typo?), got missing"),
    ({"device": "d", "where": {"lat": 1.0}},  # no key like it: as before
     "stream 'readings': field Reading.temperature expected double, got missing"),
])
def test_a_missing_field_names_the_key_that_looks_like_it(record: dict[str, object],
                                                         message: str) -> None:
    with pytest.raises(EncodeError) as caught:
        Codec("readings", READING).encode(record)
    assert str(caught.value) == message
