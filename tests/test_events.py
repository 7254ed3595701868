"""Events and lineage headers as a person sees them in Python: ids as hex, never raw bytes."""

from __future__ import annotations

import re

from doa.events import Event, Lineage, coordinate_id, pack_lineage, unpack_lineage

HEX16 = re.compile(r"'[0-9a-f]{32}'")


def test_lineage_repr_shows_every_id_as_hex() -> None:
    parents = (coordinate_id("readings", 0, 1), coordinate_id("readings", 1, 2))
    lin = unpack_lineage(pack_lineage(Lineage(coordinate_id("alerts", 0, 0), "flag",
                                              b"\xc3\x01UI\x03b \x1c", parents, 4)))
    text = repr(lin)
    assert "b'" not in text and "\\x" not in text, text
    assert HEX16.findall(text) == [f"'{lin.id.hex()}'", *(f"'{p.hex()}'" for p in parents)]
    assert f"fingerprint='{lin.fingerprint.hex()}'" in text and "model_version=4" in text
    assert repr(lin.parents[0]).startswith("b'")  # the values stay bytes: only repr changes


def test_event_repr_shows_its_id_as_hex() -> None:
    e = Event({"x": 1}, stream="readings", partition=0, offset=7, timestamp=0)
    assert repr(e) == (f"Event({{'x': 1}}, stream='readings', partition=0, offset=7, "
                       f"id='{coordinate_id('readings', 0, 7).hex()}')")
