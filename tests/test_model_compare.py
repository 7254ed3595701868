"""``doa model compare`` places each metric record on the input partition it was computed on.

A metrics stream may have fewer partitions than the node's input (one, as in the README's
claims example): the records of every input partition then share its partition 0, and the
input partition is the one of the label their lineage names.
"""

from __future__ import annotations

from typing import Any

from doa.cli.model import standing
from doa.events import Coordinates, Event, Lineage, pack_lineage


def _event(record: dict[str, Any], stream: str, partition: int, offset: int,
           read_from: Coordinates | None = None) -> Event:
    headers: tuple[tuple[str, bytes], ...] = ()
    if read_from is not None:
        lin = Lineage(offset.to_bytes(16, "big"), "price", b"f" * 8, (b"p" * 16,),
                      record.get("model_version", 0), (read_from,))
        headers = (("doa", pack_lineage(lin)),)
    return Event(record, stream=stream, partition=partition, offset=offset, timestamp=0,
                 headers=headers)


def test_metrics_of_two_input_partitions_on_one_metrics_partition_are_told_apart() -> None:
    events = [_event({"action": "created", "version": 2, "from_version": 1, "partition": p},
                     "price.models", 0, p) for p in (0, 1)]
    metrics = [
        _event({"model_version": 2, "value": 2.9, "labels": 200}, "price.metrics", 0, 60,
               Coordinates("fares", 0, 900)),
        _event({"model_version": 2, "value": 5.1, "labels": 180}, "price.metrics", 0, 61,
               Coordinates("fares", 1, 1448)),
    ]
    roles = standing(events, metrics)
    assert roles[0]["metrics"][2]["value"] == 2.9
    assert roles[1]["metrics"][2]["value"] == 5.1


def test_a_metric_without_lineage_stays_on_its_own_partition() -> None:
    events = [_event({"action": "created", "version": 1, "from_version": 0, "partition": p},
                     "m.models", 0, p) for p in (0, 1)]
    metrics = [_event({"model_version": 1, "value": 0.5, "labels": 10}, "m.metrics", 1, 3)]
    roles = standing(events, metrics)
    assert 1 not in roles[0]["metrics"]
    assert roles[1]["metrics"][1]["value"] == 0.5
