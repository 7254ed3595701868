"""A replayed record is for the node whose dead letter it was: its ``doa.replay`` header names
the node (version 2); a header written before (version 1, no node) is still read, and is for
every reader. Every other node reading the stream skips the replay, counted, not dead-lettered.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest

from doa.dlq import ReplayReport, _send_one
from doa.events import (
    LINEAGE_HEADER,
    REPLAY_HEADER,
    Replay,
    pack_replay,
    replay_fields,
    replay_node,
    unpack_replay,
)
from doa.runtime.runner import NodeRunner, RawRecord
from doa.topology.loader import load_topology
from doa.topology.topology import Topology

COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


def header_before(attempt: int, stream: str, partition: int, offset: int) -> bytes:
    """A ``doa.replay`` header as doa wrote it before it named the node (version 1)."""
    return struct.pack("<BIiq", 1, attempt, partition, offset) + stream.encode()


def test_the_header_round_trips_with_the_node() -> None:
    r = Replay(3, "alerts", 2, 40, "pager.page")
    assert unpack_replay(pack_replay(r)) == r
    assert replay_node([(LINEAGE_HEADER, b"\x02" + b"\0" * 40),
                        (REPLAY_HEADER, pack_replay(r))]) == b"pager.page"
    assert replay_fields([(REPLAY_HEADER, pack_replay(r))]) == {
        "attempt": 3, "original": {"stream": "alerts", "partition": 2, "offset": 40}}


def test_a_header_written_before_reads_and_is_for_every_reader() -> None:
    old = header_before(1, "alerts", 0, 9)
    assert unpack_replay(old) == Replay(1, "alerts", 0, 9, "")
    assert replay_node([(REPLAY_HEADER, old)]) is None
    assert replay_fields([(REPLAY_HEADER, old)])["original"] == {
        "stream": "alerts", "partition": 0, "offset": 9}
    assert pack_replay(Replay(1, "alerts", 0, 9)) == old, "no node: written as before"


@pytest.mark.parametrize("value", [
    b"\x02" + b"\0" * 10,  # shorter than the fixed part (17 bytes)
    struct.pack("<BIiq", 2, 1, 0, 9),  # no stream length
    struct.pack("<BIiq", 2, 1, 0, 9) + b"\x09ale",  # a stream name cut short
    struct.pack("<BIiq", 7, 1, 0, 9) + b"alerts",  # an unknown version
])
def test_a_malformed_header_is_a_value_error_and_addresses_no_node(value: bytes) -> None:
    with pytest.raises(ValueError):
        unpack_replay(value)
    assert replay_fields([(REPLAY_HEADER, value)]) == {}
    assert replay_node([(REPLAY_HEADER, value)]) is None


def siblings() -> Topology:
    """``counting`` with a second node, ``tally``, reading ``events`` beside ``count``."""
    t = load_topology(str(COUNTING))

    @t.node(reads="events", writes="counts", state=lambda: 0)
    def tally(state: int, batch: list[Any]) -> tuple[int, list[Any]]:
        return state + len(batch), []

    return t


def test_only_the_node_a_replay_is_for_processes_it() -> None:
    t = siblings()
    value = t.codec("events").encode({"key": "k1", "n": 5, "payload": ""})
    lineage = (LINEAGE_HEADER, b"\x01" + b"\0" * 34)

    def raw(offset: int, node: str | None) -> RawRecord:
        headers = (lineage,) if node is None else (
            lineage, (REPLAY_HEADER, pack_replay(Replay(1, "events", 0, 2, node))))
        return RawRecord("events", 0, offset, 0, b"k1", value, headers)

    batch = [raw(10, None), raw(11, "count"), raw(12, "tally"), raw(13, ""),
             RawRecord("events", 0, 14, 0, b"k1", value,
                       (lineage, (REPLAY_HEADER, header_before(1, "events", 0, 3))))]
    count = NodeRunner(t, t.nodes["count"], clock=lambda: 0).process({"keys": {}}, batch)
    assert (count.records_in, count.records_out, count.skipped, count.dead_letters) == (5, 4, 1, 0)
    tally = NodeRunner(t, t.nodes["tally"], clock=lambda: 0).process(0, batch)
    assert (tally.records_in, tally.state, tally.skipped, tally.dead_letters) == (5, 4, 1, 0)


def test_a_replay_that_fails_again_is_a_letter_of_the_same_node() -> None:
    t = siblings()
    poison = t.codec("events").encode({"key": "k1", "n": 5, "payload": "poison"})
    header = pack_replay(Replay(1, "events", 0, 2, "count"))
    raw = RawRecord("events", 0, 30, 0, b"k1", poison, ((REPLAY_HEADER, header),))
    result = NodeRunner(t, t.nodes["count"], clock=lambda: 0).process({"keys": {}}, [raw])
    assert (result.dead_letters, result.skipped) == (1, 0)
    letter = t.codec(t.dead_letters.name).decode(result.outputs[0].value)
    assert (letter["node"], letter["attempt"], letter["original"]) == (
        "count", 1, {"stream": "events", "partition": 0, "offset": 2})


class Producer:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send(self, stream: str, **kw: Any) -> object:
        self.sent.append({"stream": stream, **kw})
        return object()


class Message:
    topic, partition, offset, headers = "counting.dlq", 0, 7, ()


def letter(node: str) -> dict[str, Any]:
    return {"stream": "events", "partition": 1, "offset": 4, "node": node, "key": b"k1",
            "raw": b"\xc3\x01" + b"\0" * 12, "error_type": "ValueError", "message": "boom",
            "record_timestamp": 5, "attempt": 0, "original": None, "tombstone": False}


def test_replay_names_the_letters_node_and_skips_a_letter_of_no_reader() -> None:
    t = siblings()
    producer, report = Producer(), ReplayReport()
    assert _send_one(producer, t, None, Message(), letter("count"), "counting.dlq/0@7", set(),
                     report) is not None
    [(_, value)] = [h for h in producer.sent[0]["headers"] if h[0] == REPLAY_HEADER]
    assert unpack_replay(value) == Replay(1, "events", 1, 4, "count")

    gone = ReplayReport()
    assert _send_one(producer, t, None, Message(), letter("renamed"), "counting.dlq/0@7",
                     set(), gone) is None
    assert gone.skipped == ["counting.dlq/0@7: node 'renamed' is not in 'counting': its "
                            "replay would reach no node"]
    assert len(producer.sent) == 1
