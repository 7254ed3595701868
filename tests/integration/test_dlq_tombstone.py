"""A tombstone on a stream a doa node reads is dead-lettered (no doa node takes a null value),
and ``doa dlq --replay`` never re-publishes it: it did, the node dead-lettered it again, and the
listing kept saying ``1 not replayed yet (`doa dlq --replay` sends them)``, one more letter
and one more record on every replay. It stays in the dead-letter stream, listed as a
tombstone, and is not counted as waiting for a replay."""

from __future__ import annotations

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.keys import partition_for
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, drain, raw_records
from tests.test_dlq import NO_NULLS, NULL_WHY

pytestmark = [pytest.mark.broker, pytest.mark.brokers(
    "tansu", reason="the listing and replay logic is broker-independent (test_dlq_lineage "
                    "runs both); CI time")]


def _dlq(broker: str, *args: str) -> tuple[str, str]:
    """``doa dlq COUNTING ARGS`` (it must succeed): its stdout and stderr."""
    done = doa_command("dlq", COUNTING, "--broker", broker, *args, timeout=120)
    out, said = done.stdout.decode(), done.stderr.decode()
    assert done.returncode == 0, out + said
    return out, said


def test_a_tombstone_is_listed_and_never_replayed_so_it_makes_no_new_letters(
        broker: str) -> None:
    from kafka import KafkaProducer

    topology = load_topology(COUNTING)
    prepare(topology, broker)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for n in range(3):
            pub.send({"key": "k1", "n": n, "payload": ""})
    p = partition_for(b"k1", topology.streams["events"].partitions)
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    try:
        producer.send("events", value=None, key=b"k1", partition=p).get(timeout=30)
    finally:
        producer.close()
    assert drain(topology, broker, 4).stats["count"].dead_letters == 1
    dlq = topology.dead_letters.name
    [(at, letter)] = raw_records(broker, dlq, idle_s=1).items()
    events = raw_records(broker, "events", idle_s=1)
    assert len(events) == 4 and events[(p, 3)] is None

    listed, _ = _dlq(broker)
    assert listed.splitlines()[1:] == [
        f"events/{p}@3  node count  DoaError  (0 bytes, key 'k1')  tombstone, not replayed",
        "    stream 'events': record has no value (a tombstone)",
        f"    not replayed: {NULL_WHY}",
        f"1 dead letters; 0 not replayed yet; 1 tombstone, not replayed: {NO_NULLS}"], listed
    assert _dlq(broker, "--open")[0] == listed  # not replayed: --open lists it too
    assert _dlq(broker, "--open", "--node", "count")[0].splitlines()[-1] == (
        f"1 dead letters of node count; 0 not replayed yet; 1 tombstone, not replayed: "
        f"{NO_NULLS}")

    # the node (the same: it still takes no null value) would dead-letter a replay of it again
    out, said = _dlq(broker, "--replay")
    assert out.splitlines() == [f"replayed 0 dead letters; 0 failed, 0 skipped; 1 tombstone, "
                                f"not replayed: {NO_NULLS} (they stay in {dlq}, listed)"], out
    assert said.splitlines() == [f"tombstone, not replayed: {dlq}/{at[0]}@{at[1]}: node "
                                 f"'count': {NULL_WHY}"], said
    for args, which in ((("--replay",), ""),  # passed once: no more
                        (("--replay", "--node", "count"), " of node count")):
        out, said = _dlq(broker, *args)
        assert out.splitlines() == [f"replayed 0 dead letters{which}; 0 failed, 0 skipped"], \
            out + said
    assert raw_records(broker, "events", idle_s=1) == events  # nothing was re-published
    assert raw_records(broker, dlq, idle_s=1) == {at: letter}  # and no new letter came of it
    assert _dlq(broker)[0] == listed
