"""What a replay may send, without a broker: a letter whose bytes are not a record of its
stream is undecodable (never re-published), a tombstone or a record is not; and the marks of
runs of one node and of all say which letters were replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from doa.cli.dlq import dlq_cmd
from doa.dlq_books import Books
from doa.dlq_read import Readers
from doa.topology.loader import load_topology

COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


def letter(raw: bytes, **fields: Any) -> dict[str, Any]:
    return {"stream": "events", "partition": 1, "offset": 4, "node": "count", "raw": raw,
            "error_type": "ValueError", "message": "boom", "tombstone": False, **fields}


def test_only_bytes_that_are_no_record_of_the_stream_are_undecodable() -> None:
    t = load_topology(str(COUNTING))
    readers = Readers(t, "unused:9092")  # the topology's schema reads these: no registry
    record = t.codec("events").encode({"key": "k1", "n": 1, "payload": "poison"})
    assert readers.undecodable(letter(record)) is None
    assert readers.undecodable(letter(b"", tombstone=True)) is None  # replayed as before
    assert readers.undecodable(letter(b"\x00junk", stream="gone")) is None  # replay says why
    why = readers.undecodable(letter(b"\x00garbage"))
    assert why is not None and why.startswith("its bytes are not a record of stream 'events' (")
    assert why.endswith("): fix the producer") and "\n" not in why


def test_runs_of_one_node_and_of_all_mix() -> None:
    """Letters a0 b1 a2 b3: replay a (mark a: 4), then all from 0 (mark all: 4)."""
    books = Books(nodes={"a": {0: 4}})
    assert [books.replayed(0, o, n) for o, n in ((0, "a"), (1, "b"), (2, "a"), (3, "b"))] == [
        True, False, True, False]
    assert (books.start(0, None), books.start(0, "a"), books.start(0, "b")) == (0, 4, 0)
    books.every[0] = 4  # then letters a4 b5, and a replay of b: from 4, b5 only
    assert books.start(0, "b") == 4 and not books.replayed(0, 5, "b")
    books.nodes["b"] = {0: 6}  # then a replay of all from 4: a4 only
    assert [books.replayed(0, o, n) for o, n in ((4, "a"), (5, "b"))] == [False, True]


@pytest.mark.parametrize("args", [["--node", "counter"], ["--replay", "--node", "counter"]])
def test_an_unknown_node_is_one_line_before_the_broker(args: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("doa.cluster.reach.check_reachable", lambda *a, **k: None)
    done = CliRunner().invoke(dlq_cmd, [str(COUNTING), "--broker", "unused:9092", *args])
    assert done.exit_code != 0
    assert str(done.exception) == ("--node 'counter': topology 'counting' has no such node "
                                   "(its nodes: count)")
