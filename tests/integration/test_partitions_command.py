"""``doa partitions TOPOLOGY``: grow a topology's topics to the counts it now declares.

A user walk declared ``partitions=6`` for a stream made with 4 (it had grown while nodes ran):
``doa check --broker`` and ``doa deploy`` refused the node's state topic ("declare those
counts", which a state topic cannot: its count is its input stream's), and doa had no way to
grow a topic. Now ``doa partitions`` grows the stream and the state topics of the nodes that
read it, in one go; without ``--yes`` it only says so; it refuses to shrink.

Growing needs CreatePartitions, which Apache Kafka offers and tansu (0.6) does not: there the
command says so in one line and changes nothing.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.streams import broker_topics
from doa.events import lineage_of
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT, doa_process, kill9
from tests.integration.helpers import Lines, Tail, doa_command, doa_env, one_line, wait_until

pytestmark = pytest.mark.broker

MODULE = f'''
import os

from doa import Topology

PARTS = int(os.environ.get("TEST_PARTS", "4"))
topology = Topology("grow", schemas={str(ROOT / "tests" / "schemas")!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=PARTS)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=PARTS)


@topology.node(reads=events, writes=counts, state=dict)
def count(state, batch):
    out = []
    for e in batch:
        state[e["key"]] = state.get(e["key"], 0) + 1
        out.append((e, {{"key": e["key"], "n": e["n"], "count": state[e["key"]],
                        "total": e["n"]}}))
    return state, out
'''
TOPICS = ("events", "counts", "grow.count.state")
TANSU = ("tansu (0.6) does not offer CreatePartitions: `doa partitions` says so in one line "
         "(test_on_a_broker_without_create_partitions_it_says_so_and_changes_nothing)")


def _module(tmp_path: Path) -> str:
    path = tmp_path / "grow.py"
    path.write_text(MODULE)
    return str(path)


def _doa(parts: int, *args: str) -> Any:
    return doa_command(*args, env=doa_env(TEST_PARTS=str(parts)))


def _counts(broker: str) -> dict[str, int]:
    have = broker_topics(broker)
    return {t: have.get(t, 0) for t in TOPICS}


def _deploy(module: str, broker: str, parts: int) -> None:
    done = _doa(parts, "deploy", module, "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert _counts(broker) == dict.fromkeys(TOPICS, parts)


def _publish(module: str, broker: str, parts: int, n: int, first: int) -> set[bytes]:
    import os

    rnd = random.Random(first)
    before = os.environ.get("TEST_PARTS")
    os.environ["TEST_PARTS"] = str(parts)  # the module reads it when loaded
    try:
        topology = load_topology(module)
    finally:
        if before is None:
            del os.environ["TEST_PARTS"]
        else:
            os.environ["TEST_PARTS"] = before
    assert topology.streams["events"].partitions == parts
    with Publisher("events", broker=broker, topology=topology) as pub:
        return {pub.send({"key": f"k{rnd.randrange(40)}", "n": first + i, "payload": "p"})
                for i in range(n)}


@pytest.mark.brokers("kafka", reason=TANSU)
def test_partitions_grows_a_stream_and_its_nodes_state_topics_then_check_and_run_pass(
        broker: str, tmp_path: Path) -> None:
    module = _module(tmp_path)
    _deploy(module, broker, 4)
    sent = _publish(module, broker, 4, 200, 0)

    # Declared 6 now: check and deploy refuse, and say what grows them.
    done = _doa(6, "deploy", module, "--broker", broker)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        "error: 3 topics have other partition counts on the broker than the topology "
        "declares: 'counts' has 4 (declared 6), 'events' 4 (declared 6), 'grow.count.state' 4 "
        "(declared 6): `doa partitions TOPOLOGY --yes` grows them (a key may then move to "
        "another partition and start its state anew)")

    # The dry run: the plan, nothing changed.
    done = _doa(6, "partitions", module, "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert done.stdout.decode().splitlines() == [
        "would grow 'events': 4 -> 6 partitions",
        "would grow 'counts': 4 -> 6 partitions",
        "would grow 'grow.count.state': 4 -> 6 partitions",
        "keys move: a key's state starts anew on its new partition",
        f"dry run: nothing changed on {broker}; `doa partitions {module} --broker {broker} "
        "--yes` grows them"]
    assert _counts(broker) == dict.fromkeys(TOPICS, 4), "the dry run changed the broker"

    # --yes: grown, one line per topic.
    done = _doa(6, "partitions", module, "--broker", broker, "--yes")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b""
    assert done.stdout.decode().splitlines() == [
        "grew 'events': 4 -> 6 partitions",
        "grew 'counts': 4 -> 6 partitions",
        "grew 'grow.count.state': 4 -> 6 partitions"]
    assert _counts(broker) == dict.fromkeys(TOPICS, 6)

    # Again: nothing left to grow.
    done = _doa(6, "partitions", module, "--broker", broker, "--yes")
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().splitlines() == [
        f"topology 'grow' on {broker}: no topic has fewer partitions than declared, nothing "
        "to grow"]

    # check passes, and so does deploy; the old copy (4) is refused, and told it may be old.
    done = _doa(6, "check", module, "--broker", broker)
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
    assert "ok: topology 'grow'" in done.stdout.decode()
    done = _doa(6, "deploy", module, "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    done = _doa(4, "deploy", module, "--broker", broker)
    assert done.returncode == 1
    assert one_line(done.stderr) == (
        "error: 2 topics have other partition counts on the broker than the topology "
        "declares: 'counts' has 6 (declared 4), 'events' 6 (declared 4) (created or grown "
        "before: by another client, e.g. a broker that creates topics with its default count, "
        "or declared otherwise; or this is an out-of-date copy of this topology): declare "
        "those counts, or delete the topics and deploy again")

    # doa run starts and processes every record: the ones from before, and new ones keyed
    # into all 6 partitions (the added ones too).
    sent |= _publish(module, broker, 6, 300, 1000)
    proc = doa_process("run", module, "--broker", broker, "-q", env={"TEST_PARTS": "6"})
    lines = Lines(proc)
    try:
        with Tail(broker, "counts") as outputs:
            def all_out() -> bool:
                outputs.poll(100)
                return len(outputs.records) >= len(sent)
            assert wait_until(lambda: all_out() or proc.poll() is not None, 120), lines.text()
            assert proc.poll() is None, lines.text()
            outs = outputs.drain(1000)
    finally:
        kill9(proc)
    parents = {lineage_of(m.headers).parents[0] for m in outs}  # type: ignore[union-attr]
    assert parents == sent, f"{len(parents & sent)} of {len(sent)} inputs have an output"
    assert {m.partition for m in outs} >= {4, 5}, "nothing went through the added partitions"


@pytest.mark.brokers("tansu", reason="Apache Kafka grows topics: the test above")
def test_on_a_broker_without_create_partitions_it_says_so_and_changes_nothing(
        broker: str, tmp_path: Path) -> None:
    module = _module(tmp_path)
    _deploy(module, broker, 4)
    refused = (f"error: the broker at {broker} cannot add partitions to a topic (it does not "
               "offer Kafka's CreatePartitions request, e.g. tansu): nothing was changed; "
               "delete the topics and deploy again to have them with the declared counts")
    for yes in ((), ("--yes",)):
        done = _doa(6, "partitions", module, "--broker", broker, *yes)
        assert done.returncode == 1
        assert done.stdout == b""
        assert one_line(done.stderr) == refused
        assert _counts(broker) == dict.fromkeys(TOPICS, 4)


def test_partitions_refuses_to_shrink_and_names_the_topics(broker: str, tmp_path: Path) -> None:
    module = _module(tmp_path)
    _deploy(module, broker, 4)
    for yes in ((), ("--yes",)):
        done = _doa(2, "partitions", module, "--broker", broker, *yes)
        assert done.returncode == 1
        assert done.stdout == b""
        assert one_line(done.stderr) == (
            "error: cannot shrink a topic (Kafka cannot remove partitions), nothing was "
            "changed: 2 topics have other partition counts on the broker than the topology "
            "declares: 'counts' has 4 (declared 2), 'events' 4 (declared 2) (created or grown "
            "before: by another client, e.g. a broker that creates topics with its default "
            "count, or declared otherwise; or this is an out-of-date copy of this topology): "
            "declare those counts, or delete the topics and deploy again")
        assert _counts(broker) == dict.fromkeys(TOPICS, 4)
