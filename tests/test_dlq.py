"""Dead letters across a change of doa's own ``doa.DeadLetter`` schema: a letter says whether
its record was a tombstone (``tombstone``); one written by the version before, without the
field, is still read (the registry takes the new version beside the old) and
:func:`doa.dlq.was_tombstone` falls back to the runtime's message for it. Either way a
tombstone's letter is one a replay never sends (no doa node takes a null value), as is one
whose bytes are no record of its stream: :meth:`doa.dlq_read.Readers.kept` says which."""

from __future__ import annotations

from pathlib import Path

from doa.cluster.registry import Registered, plan_registration
from doa.dlq import was_tombstone
from doa.dlq_read import Readers
from doa.runtime.runner import NodeRunner, OutRecord, RawRecord
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from doa.wire.codec import Codec
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir

DEAD_LETTER = SchemaSet.load(builtin_schema_dir())["doa.DeadLetter"]
OLD_DEAD_LETTER = Schema.from_json({**DEAD_LETTER.json, "fields": [
    f for f in DEAD_LETTER.json["fields"] if f["name"] != "tombstone"]})
COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"
# what `doa dlq` says of a tombstone's letter: in its summaries, and as the reason it is kept
NO_NULLS = "doa nodes take no null values"
NULL_WHY = ("its record of stream 'events' has no value (a tombstone): doa nodes take no null "
            "values, a replay would only dead-letter it again")


def letters_before(topology: Topology, raws: list[RawRecord]) -> list[OutRecord]:
    """The dead letters node ``count`` of ``topology`` writes of ``raws``, as the version of
    doa before the field wrote them: the same letters without it, in the schema without it."""
    runner = NodeRunner(topology, topology.nodes["count"], clock=lambda: 1_000)
    codec = topology.codec(topology.dead_letters.name)
    old = Codec(codec.stream, OLD_DEAD_LETTER)
    return [o._replace(value=old.encode({k: v for k, v in codec.decode(o.value).items()
                                         if k != "tombstone"}))
            for o in runner.process(None, raws).outputs]


def test_letters_written_before_the_tombstone_field_read_and_fall_back_to_the_message() -> None:
    assert OLD_DEAD_LETTER.fingerprint.hex() == "2ea156232f443f8e", "not the schema shipped"
    t = load_topology(str(COUNTING))
    dlq = t.dead_letters.name
    history = {dlq: [Registered(dlq, 1, OLD_DEAD_LETTER)]}
    for level in (None, "FULL_TRANSITIVE"):  # the stream's own (BACKWARD_TRANSITIVE), and both ways
        assert (dlq, 2) in [(s, v) for s, v, _ in plan_registration(t, history, level)]

    raws = [RawRecord("events", 1, o, o, b"k1", value, ()) for o, value in enumerate([None, b""])]
    old = letters_before(t, raws)
    read = Codec(dlq, DEAD_LETTER, [OLD_DEAD_LETTER])
    letters = [read.decode(o.value) for o in old]
    assert [(x["error_type"], x["raw"], x["tombstone"]) for x in letters] == [
        ("DoaError", b"", None), ("DecodeError/truncated", b"", None)]  # null: the default
    assert [was_tombstone(x) for x in letters] == [True, False]  # by the runtime's message
    # a reader still on the version before reads a letter of the new one (it skips the field)
    new = Codec(dlq, DEAD_LETTER).encode({**letters[0], "tombstone": True})
    assert Codec(dlq, OLD_DEAD_LETTER, [DEAD_LETTER]).decode(new) == Codec(
        dlq, OLD_DEAD_LETTER).decode(old[0].value)


def test_a_tombstone_is_kept_from_a_replay_as_is_an_undecodable_letter() -> None:
    t = load_topology(str(COUNTING))
    readers = Readers(t, "unused:9092")  # the topology's schema reads these: no registry
    raws = [RawRecord("events", 1, o, o, b"k1", value, ()) for o, value in enumerate([
        None, b"", b"\x00garbage", t.codec("events").encode({"key": "k1", "n": 1,
                                                              "payload": "poison"})])]
    dlq = t.codec(t.dead_letters.name)
    new = [dlq.decode(o.value) for o in NodeRunner(t, t.nodes["count"], clock=lambda: 1_000)
           .process(None, raws).outputs]
    old = [Codec(t.dead_letters.name, DEAD_LETTER, [OLD_DEAD_LETTER]).decode(o.value)
           for o in letters_before(t, raws)]
    for letters in (new, old):  # the field says it is a tombstone, or the runtime's message
        kept = [readers.kept(x) for x in letters]
        assert kept[0] == ("tombstone", NULL_WHY), kept
        assert [k and k[0] for k in kept[1:]] == ["undecodable", "undecodable", None], kept
        assert kept[1] is not None and kept[1][1].startswith(
            "its bytes are not a record of stream 'events' (") and "\n" not in kept[1][1]
        assert kept[1][1].endswith("): fix the producer"), kept
