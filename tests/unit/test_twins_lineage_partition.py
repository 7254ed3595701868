"""One reading of a record's input partition off its lineage
(:func:`doa.lineage.log.input_partition`): ``doa lineage``'s "made by" link and
``doa model compare``'s metric placement (which falls back to the record's own partition)."""

from __future__ import annotations

from typing import Any

from doa.cli.model import standing
from doa.events import Coordinates, Event, Lineage, pack_lineage
from doa.lineage.log import Record, input_partition

READ_FROM = (Coordinates("fares", 1, 1448), Coordinates("labels", 0, 3))


def _event(record: dict[str, Any], partition: int, read_from: tuple[Coordinates, ...] | None
           ) -> Event:
    headers: tuple[tuple[str, bytes], ...] = ()
    if read_from is not None:
        lin = Lineage(b"i" * 16, "price", b"f" * 8, tuple(b"p" * 16 for _ in read_from), 2,
                      read_from)
        headers = (("doa", pack_lineage(lin)),)
    return Event(record, stream="price.metrics", partition=partition, offset=0, timestamp=0,
                 headers=headers)


def test_the_first_parent_s_partition_of_an_event_or_a_record() -> None:
    e = _event({}, 0, READ_FROM)
    assert input_partition(e.lineage) == input_partition(Record(e, e.lineage).lineage) == 1
    assert input_partition(_event({}, 0, ()).lineage) is None  # no coordinates
    assert input_partition(_event({}, 0, None).lineage) is None  # no lineage


def test_compare_places_a_metric_without_coordinates_on_its_own_partition() -> None:
    events = [Event({"action": "created", "version": 2, "from_version": 1, "partition": p},
                    stream="price.models", partition=0, offset=p, timestamp=0) for p in (0, 1)]
    metrics = [_event({"model_version": 2, "value": 1.5}, 1, None),
               _event({"model_version": 2, "value": 2.5}, 0, READ_FROM)]
    roles = standing(events, metrics)
    assert roles[1]["metrics"][2]["value"] == 2.5  # its lineage's partition wins
    assert roles[0]["metrics"] == {}
    roles = standing(events, metrics[:1])
    assert roles[1]["metrics"][2]["value"] == 1.5  # no lineage: its own partition
