"""`doa.lineage.find` on records in memory: an id prefix must name one id."""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

import pytest

from doa.errors import DoaError
from doa.events import Event
from doa.lineage.find import find, parse_event
from doa.lineage.log import Log, Record

IDS = [bytes.fromhex("1198ef9c" + "00" * 12), bytes.fromhex("1198ef9c" + "ff" * 12),
       bytes.fromhex("2c13b637" + "00" * 12)]


class _Log:
    """The part of :class:`Log` that ``find`` reads by id: one stream, one partition."""

    topology = None
    broker = "memory"

    def __init__(self, ids: list[bytes]) -> None:
        self.records = [Record(Event({}, stream="s", partition=0, offset=i, timestamp=i, id=x),
                               None) for i, x in enumerate(ids)]

    def partitions(self, stream: str) -> list[int]:
        return [0] if stream == "s" else []

    def scan(self, stream: str, partition: int, start: int,
             until_ts: int | None = None) -> Iterator[Record]:
        return iter(self.records[start:])


def _find(text: str, ids: list[bytes]) -> Record:
    return find(cast(Log, _Log(ids)), parse_event(text), ["s"])


def test_a_prefix_naming_one_id_finds_its_first_copy() -> None:
    assert _find("2c13b637", IDS).event.offset == 2
    assert _find("1198ef9c00", IDS).event.offset == 0
    assert _find("1198ef9c", [IDS[0], IDS[0]]).event.offset == 0  # one id written twice


def test_a_prefix_naming_two_ids_asks_for_more_digits() -> None:
    with pytest.raises(DoaError) as got:
        _find("1198ef9c…", IDS)
    assert str(got.value) == (f"event 1198ef9c: the prefix matches 2 ids ({IDS[0].hex()}, "
                              f"{IDS[1].hex()}); give more digits")


def test_a_full_id_or_prefix_not_there_is_not_found() -> None:
    for text in ("abcdef01", "ab" * 16):
        with pytest.raises(DoaError, match=f"^event {text}: not found in s$"):
            _find(text, IDS)
