"""A dead letter whose bytes are not a record of its stream is never re-published by
``doa dlq --replay`` (its node would dead-letter it again: a new letter on every replay): it
stays in the dead-letter stream, listed and counted as undecodable, and the replay says so."""

from __future__ import annotations

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, drain, raw_records

pytestmark = pytest.mark.broker

GARBAGE = [b"\x00garbage-0", b"\x00garbage-1", b"\xc3\x01" + b"\x07" * 8 + b"junk"]


def test_replay_leaves_undecodable_letters_listed_and_sends_the_rest(broker: str) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for i in range(6):
            pub.send({"key": "k1", "n": i, "payload": "poison" if i == 4 else ""})
        for raw in GARBAGE:
            pub.send_raw(raw, key=b"k1")
    assert drain(topology, broker, 9, timeout=60).stats["count"].dead_letters == 4
    dlq = topology.dead_letters.name
    events = len(raw_records(broker, "events", idle_s=1))

    done = doa_command("dlq", COUNTING, "--broker", broker, "--replay", timeout=120)
    out, said = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, out + said
    assert ("replayed 1 dead letters: 1 to events; 0 failed, 0 skipped; 3 undecodable, not "
            f"replayed: fix the producer (they stay in {dlq}, listed)") in out, out + said
    lines = [line for line in said.splitlines() if line.startswith("undecodable, not replayed")]
    assert len(lines) == 3 and all("its bytes are not a record of stream 'events'" in line
                                   and f"{dlq}/0@" in line for line in lines), said
    assert len(raw_records(broker, "events", idle_s=1)) == events + 1  # the poison record only

    # the node (still buggy) dead-letters the replayed poison record again: one new letter only
    assert drain(topology, broker, 1, timeout=60).stats["count"].dead_letters == 1
    assert len(raw_records(broker, dlq, idle_s=1)) == 5
    again = doa_command("dlq", COUNTING, "--broker", broker, "--replay", timeout=120)
    assert "replayed 1 dead letters: 1 to events; 0 failed, 0 skipped\n" in \
        again.stdout.decode(), again.stdout.decode() + again.stderr.decode()

    listed = doa_command("dlq", COUNTING, "--broker", broker, "--open")
    text = listed.stdout.decode()
    assert listed.returncode == 0, listed.stderr.decode()
    assert "3 dead letters; 0 not replayed yet; 3 undecodable, not replayed: fix the producer" \
        in text, text
    heads = [line for line in text.splitlines() if line.startswith("events/")]
    assert len(heads) == 3 and all(h.endswith("  undecodable, not replayed") for h in heads)
    assert text.count("    not replayed: its bytes are not a record of stream 'events'") == 3
    # the node's message is the decoder's reason: said once, not again in the why (walk 7)
    whys = [line for line in text.splitlines() if line.startswith("    not replayed: ")]
    assert all(w.endswith(" (DecodeError: as above): fix the producer") for w in whys), whys
