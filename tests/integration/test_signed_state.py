"""Signed state on real brokers: a forged snapshot in a node's state topic is refused unread.

Whoever can write ``TOPOLOGY.NODE.state`` could make a restoring node unpickle anything. With
``DOA_SIGNING_KEY`` set, the node checks each snapshot's HMAC before unpickling it, names a
refused one (topic, partition, offset) in one line, and restores from the newest snapshot it
can verify, or from the beginning of its inputs. The forged snapshots here would create a file
when unpickled, and claim an input offset far past the end: loading one would show twice.
"""

from __future__ import annotations

import logging
import pathlib
import random
from collections import defaultdict
from typing import Any

import pytest

from doa.client import Publisher
from doa.cluster.admin import state_topic
from doa.engines.launch import prepare
from doa.runtime.snapshot import SIGNED, scan, snapshot_records
from doa.testing import Harness
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process
from tests.integration.helpers import drain, raw_records
from tests.test_signing import Plant

pytestmark = pytest.mark.broker

KEY = "integration-signing-key-0123456789"
FAR = {"events": 10**9}  # a forged snapshot's input offsets: past everything


def _produce(address: str, topic: str, partition: int,
             records: list[tuple[bytes, bytes]]) -> tuple[int, int]:
    """Write ``records`` to ``topic``/``partition``; the offsets of the first and last."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=address)
    try:
        offsets = [producer.send(topic, value, key=key, partition=partition).get(30).offset
                   for key, value in records]
    finally:
        producer.close()
    return offsets[0], offsets[-1]


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    return [{"key": f"k{rnd.randrange(30)}", "n": i, "payload": ""} for i in range(n)]


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno >= logging.ERROR and "refused, not unpickled" in r.getMessage()]


def test_forged_snapshots_are_refused_unread_and_the_node_restores_from_signed_ones(
        broker: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        tmp_path: pathlib.Path) -> None:
    monkeypatch.setenv("DOA_SIGNING_KEY", KEY)
    topology = load_topology(COUNTING)
    prepare(topology, broker)
    topic = state_topic(topology, "count")
    planted = {name: tmp_path / name for name in ("first", "unsigned", "mis-signed")}
    caplog.set_level(logging.ERROR)

    # partition 3 holds a forged snapshot before any real one: nothing signed to fall back on
    _f3, o3 = _produce(broker, topic, 3, snapshot_records(3, 1, Plant(planted["first"]), FAR))
    first, second = _events(400, seed=1), _events(200, seed=2)
    with Publisher("events", broker=broker, topology=topology) as pub:
        for rec in first:
            pub.send(rec)
    drain(topology, broker, expected_in=len(first))
    assert _refusals(caplog) == [
        f"state topic {topic!r} partition 3 offset {o3}: snapshot 1 is unsigned (it carries no "
        f"signature and DOA_SIGNING_KEY is set); refused, not unpickled; restoring from the "
        f"beginning of the inputs instead"]

    # now forge over signed snapshots: an unsigned one (3 chunks) and one under another key
    _f0, o0 = _produce(broker, topic, 0, snapshot_records(
        0, 99, Plant(planted["unsigned"]), FAR, chunk_size=40))
    _f1, o1 = _produce(broker, topic, 1, snapshot_records(
        1, 99, Plant(planted["mis-signed"]), FAR, key=b"the attacker's own key, 16+ bytes",
        topic=topic))
    caplog.clear()
    with Publisher("events", broker=broker, topology=topology) as pub:
        for rec in second:
            pub.send(rec)
    drain(topology, broker, expected_in=len(second))

    assert not any(path.exists() for path in planted.values()), "a forged pickle was loaded"
    lines = sorted(_refusals(caplog))
    assert len(lines) == 2, lines
    assert lines[0].startswith(f"state topic {topic!r} partition 0 offsets {_f0}-{o0}: "
                               f"snapshot 99 is unsigned")
    assert lines[1].startswith(f"state topic {topic!r} partition 1 offset {o1}: snapshot 99 "
                               f"is mis-signed (its signature does not match DOA_SIGNING_KEY")
    assert all("restoring from snapshot 1 (offset " in line for line in lines)

    # every partition's newest snapshot is signed, and equals the run that was never attacked
    reference = Harness(topology, batch_size=100)
    reference.publish("events", first + second)
    reference.run()
    tails: dict[int, list[tuple[int, bytes]]] = defaultdict(list)
    for (p, offset), value in sorted(raw_records(broker, topic).items()):
        tails[p].append((offset, value))
    assert sorted(tails) == [0, 1, 2, 3]
    for p, state in reference.state("count").items():
        values, offsets = [v for _o, v in tails[p]], [o for o, _v in tails[p]]
        snap, refused = scan(values, KEY.encode(), topic=topic, partition=p, offsets=offsets)
        assert snap is not None and refused == [] and values[-1][4] == SIGNED
        assert snap.state["keys"] == state["keys"]
        assert snap.offsets == {"events": len(reference.logs["events"][p])}
        other, refused = scan(values, b"yet another key of 16+ bytes", topic=topic,
                              partition=p, offsets=offsets)
        assert other is None and refused and all(r.reason in ("mis-signed", "unsigned")
                                                  for r in refused)
    assert not any(path.exists() for path in planted.values())


def test_without_a_key_doa_run_warns_once(broker: str) -> None:
    fraud = str(pathlib.Path(COUNTING).parents[2] / "topologies" / "fraud.py")  # 3 nodes
    assert len(load_topology(fraud).nodes) >= 3
    proc = doa_process("run", fraud, "--broker", broker, "--quiet", "--for", "2",
                       env={"DOA_SIGNING_KEY": ""})
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    warnings = [line for line in err.decode().splitlines() if "no signing key" in line]
    assert len(warnings) == 1, err.decode()[-2000:]
    assert "writable only by this topology's own principal" in warnings[0]


@pytest.mark.brokers("tansu", reason="the broker doa starts itself: no broker fixture used")
def test_on_its_own_embedded_broker_doa_run_does_not_warn(broker_kind: str) -> None:
    # Its state lives in a broker that dies with the process: no unsigned state can outlive
    # the run, and the three-line warning on every `doa run`/`doa demo` was noise.
    proc = doa_process("run", COUNTING, "--quiet", "--for", "2",
                       env={"DOA_SIGNING_KEY": "", "DOA_BROKER": ""})
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "starting an embedded broker" in err.decode(), err.decode()[-2000:]
    assert "no signing key" not in err.decode(), err.decode()[-2000:]
