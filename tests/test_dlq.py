"""Dead letters across a change of doa's own ``doa.DeadLetter`` schema: a letter says whether
its record was a tombstone (``tombstone``); one written by the version before, without the
field, is still read (the registry takes the new version beside the old) and
:func:`doa.dlq.was_tombstone` falls back to the runtime's message for it."""

from __future__ import annotations

from pathlib import Path

from doa.cluster.registry import Registered, plan_registration
from doa.dlq import was_tombstone
from doa.runtime.runner import NodeRunner, OutRecord, RawRecord
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from doa.wire.codec import Codec
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir

DEAD_LETTER = SchemaSet.load(builtin_schema_dir())["doa.DeadLetter"]
OLD_DEAD_LETTER = Schema.from_json({**DEAD_LETTER.json, "fields": [
    f for f in DEAD_LETTER.json["fields"] if f["name"] != "tombstone"]})
COUNTING = Path(__file__).resolve().parent / "topologies" / "counting.py"


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
