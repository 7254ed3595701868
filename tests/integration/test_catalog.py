"""``doa catalog`` on a running system: two ``doa run`` processes of the fraud demo, each with
its own ``--nodes``, on the embedded broker; then one of them is killed.

The catalog needs only the broker: streams, schemas (checked against the schema files),
writers (nodes from ``_doa_topologies``, the publisher from the records' lineage headers),
consumer groups, counts equal to what was published, and the processes' liveness.
The behaviour under test is the catalog's, not the broker's: tansu only (the unit tests of
:mod:`doa.catalog` cover the offset rules where tansu and Kafka differ).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from doa.catalog import collect
from doa.client import Publisher
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process, kill9
from tests.integration.helpers import doa_command, wait_until

pytestmark = pytest.mark.broker

FRAUD = "topologies/fraud.py"
ENV = {"DOA_HEARTBEAT_S": "1", "DOA_SNAPSHOT_EVERY_MS": "300", "DOA_SHUTDOWN_GRACE_S": "5"}
TRANSACTIONS = 1200


@pytest.fixture
def address() -> Iterator[str]:
    with EmbeddedBroker() as broker:
        yield broker.address


def _node(catalog: dict[str, Any], name: str) -> dict[str, Any]:
    return next(n for n in catalog["nodes"] if n["name"] == name)


def _stream(catalog: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in catalog["streams"] if s["name"] == name)


def _publish(address: str) -> dict[str, int]:
    """The demo's transactions and labels, stamped around now; counts per stream."""
    from topologies.fraud import T0, demo_source

    shift = int(time.time() * 1000) - T0 - 5000
    counts: dict[str, int] = {}
    pubs: dict[str, Publisher] = {}
    try:
        for stream, record, ts in demo_source(20_000):  # its drift points need n >~ 10k
            if counts.get("transactions", 0) == TRANSACTIONS:
                break
            if stream not in pubs:
                pubs[stream] = Publisher(stream, broker=address, name="card-feed")
            pubs[stream].send(record, timestamp_ms=ts + shift)
            counts[stream] = counts.get(stream, 0) + 1
    finally:
        for p in pubs.values():
            p.close()
    return counts


def test_catalog_of_two_processes_then_one_killed(address: str) -> None:
    env = {"DOA_BROKER": address, **ENV}
    features = doa_process("run", FRAUD, "--nodes", "featurize", "-q", env=env)
    learner = doa_process("run", FRAUD, "--nodes", "scorer,watch_errors", "-q", env=env)
    try:
        def both_alive() -> dict[str, Any] | None:
            c = collect(address)
            alive = {n["name"] for n in c["nodes"] if n["alive"]}
            return c if {"featurize", "scorer", "watch_errors"} <= alive else None

        assert wait_until(both_alive, 90, 0.5), "the two processes never showed as alive"
        published = _publish(address)

        def processed() -> dict[str, Any] | None:
            c = collect(address)
            scorer = _stream(c, "card_features")["readers"]
            done = (_stream(c, "predictions")["records"] > 0
                    and all(r["lag"] is not None for r in scorer))
            return c if done else None

        assert wait_until(processed, 60, 0.5), "no predictions, or no commits, in 60 s"
        result = doa_command("catalog", "--broker", address, "--json")
        assert result.returncode == 0, result.stderr.decode()
        catalog = json.loads(result.stdout)
        _check_streams(catalog, published)
        _check_nodes(catalog, features.pid, learner.pid)

        kill9(features)
        killed = time.monotonic()
        gone = wait_until(lambda: not _node(collect(address), "featurize")["alive"], 20, 0.2)
        waited = time.monotonic() - killed
        assert gone, "featurize still alive 20 s after kill -9"
        # three heartbeat intervals of 1 s, plus one catalog read
        assert waited < 3 * 1.0 + 4.0, f"featurize shown alive {waited:.1f} s after kill -9"
        after = collect(address)
        assert _node(after, "scorer")["alive"] and _node(after, "watch_errors")["alive"]
        dead = _node(after, "featurize")["processes"]
        assert [(p["pid"], p["status"]) for p in dead] == [(features.pid, "silent")]
    finally:
        for p in (features, learner):
            if p.poll() is None:
                kill9(p)


def _check_streams(catalog: dict[str, Any], published: dict[str, int]) -> None:
    topology = load_topology(FRAUD)
    names = {s["name"] for s in catalog["streams"]}
    assert set(topology.streams) <= names
    assert not any(n.startswith("_") or n.endswith(".state") for n in names)
    assert {"_doa_topologies", "_doa_schemas"} <= set(catalog["hidden"])
    for name in topology.streams:
        s = _stream(catalog, name)
        schema = topology.codec(name).schema  # the schema file, as the topology reads it
        assert s["schema"]["fingerprint"] == schema.fingerprint.hex(), name
        assert [f["name"] for f in s["schema"]["fields"]] == [
            f["name"] for f in schema.json["fields"]], name
        assert s["schema"]["versions"][0]["version"] == 1
        assert s["key"] == topology.streams[name].key
        assert s["partitions"] == topology.streams[name].partitions
        assert s["topologies"] == ["fraud"]
    for name, count in published.items():  # counts equal what was published
        s = _stream(catalog, name)
        assert s["records"] == count, (name, s["records"], count)
        assert s["last_minute"] == count, (name, s["last_minute"], count)
        assert [p["name"] for p in s["publishers"]] == ["card-feed"], s["publishers"]
        assert s["writers"] == [], s["writers"]  # no node writes an input
    features = _stream(catalog, "card_features")
    assert features["records"] == published["transactions"]
    assert [(w["node"], w["alive"]) for w in features["writers"]] == [("featurize", True)]
    assert features["writers"][0]["sampled"] > 0 and features["publishers"] == []
    predictions = _stream(catalog, "predictions")
    assert predictions["records"] > 0
    assert [w["node"] for w in predictions["writers"]] == ["scorer"]
    readers = {r["group"]: r for r in _stream(catalog, "transactions")["readers"]}
    assert set(readers) == {"fraud.featurize"}
    assert readers["fraud.featurize"]["node"] == "featurize"
    assert 0 <= readers["fraud.featurize"]["lag"] <= published["transactions"]
    groups = {r["group"] for r in _stream(catalog, "card_features")["readers"]}
    assert groups == {"fraud.scorer"}


def _check_nodes(catalog: dict[str, Any], features_pid: int, learner_pid: int) -> None:
    runs = {n["name"]: [p["pid"] for p in n["processes"]] for n in catalog["nodes"]}
    assert runs == {"featurize": [features_pid], "scorer": [learner_pid],
                    "watch_errors": [learner_pid]}
    for n in catalog["nodes"]:
        assert n["alive"], n["name"]
        (p,) = n["processes"]
        assert (p["status"], p["engine"], p["heartbeat_s"]) == ("running", "kafka", 1.0)
    scorer = _node(catalog, "scorer")
    assert scorer["kind"] == "learner" and scorer["settings"]["model"] == "HoeffdingTreeClassifier"
    assert _node(catalog, "featurize")["processes"][0]["stats"]["records_in"] > 0
    assert [t["processes_alive"] for t in catalog["topologies"]] == [2]


def test_announcer_writes_description_heartbeats_then_stopped(address: str) -> None:
    from doa.catalog.describe import DESCRIPTIONS, HEARTBEATS, TOPIC
    from doa.catalog.publish import Announcer
    from tests.integration.helpers import raw_records

    topology = load_topology("topologies/sensors.py")
    announcer = Announcer(topology, address, ["flag_spikes"], "kafka", interval_s=0.2)
    announcer.start()
    assert wait_until(lambda: announcer.sent >= 3, 30), announcer.sent
    assert _node(collect(address), "flag_spikes")["starting"]  # no tick yet: nodes starting
    announcer.tick(None)(0.0, {})  # the run's first tick: its nodes have started
    sent = announcer.sent
    assert wait_until(lambda: announcer.sent >= sent + 2, 30), announcer.sent
    node = _node(collect(address), "flag_spikes")
    assert node["alive"] and not node["starting"], node
    announcer.stop(timeout_s=10)
    records = raw_records(address, TOPIC)
    by_part = {p: [json.loads(v) for (q, _o), v in sorted(records.items()) if q == p]
               for p in (DESCRIPTIONS, HEARTBEATS)}
    assert [(d["type"], d["status"]) for d in by_part[DESCRIPTIONS]] == [
        ("description", "running"), ("description", "stopped")]
    beats = by_part[HEARTBEATS]
    assert len(beats) >= 3 and {b["type"] for b in beats} == {"heartbeat"}
    statuses = [b["status"] for b in beats]
    starting = statuses.count("starting")
    assert starting >= 2 and statuses == (["starting"] * starting + ["running"] * (
        len(beats) - starting - 1) + ["stopped"]), statuses
    assert [b["at"] for b in beats] == sorted(b["at"] for b in beats)
    (process,) = _node(collect(address), "flag_spikes")["processes"]
    assert (process["status"], process["alive"], process["key"]) == (
        "stopped", False, announcer.key)
