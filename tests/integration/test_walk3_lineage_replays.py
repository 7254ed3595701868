"""``doa export`` and ``doa dataset`` leave out what ``doa dlq --replay`` re-published for a node.

A replayed record is the node's second chance at a record the stream already holds (under a
new id): walk finding, ``doa export TOPOLOGY anomaly_scores`` wrote 4,748 rows for 3,500
predictions (1,248 replays for the alert node, nothing marking them), where ``doa subscribe``
gives 3,500. On the embedded broker: a real dead letter replayed with ``doa.dlq.replay`` for
the export, and outcomes replayed for a node by hand (the header ``doa dlq`` writes) for the
dataset, whose ranks (hence ``learned_version``) a replay counted as a label shifted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from doa.client import Publisher
from doa.collect.dataset import collect
from doa.collect.export import export
from doa.dlq import replay
from doa.engines.launch import prepare
from doa.events import LINEAGE_HEADER, REPLAY_HEADER, Replay, lineage_of, pack_lineage, pack_replay
from doa.keys import partition_for
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, ROOT
from tests.integration.helpers import drain

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000
FRAUD = str(ROOT / "topologies" / "fraud.py")


@pytest.fixture
def tansu() -> Iterator[str]:
    with EmbeddedBroker() as b:
        yield b.address


def _rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_export_leaves_out_a_replay_for_a_node_and_keeps_it_on_request(
        tansu: str, tmp_path: Path) -> None:
    topology = load_topology(COUNTING)
    prepare(topology, tansu)
    with Publisher("events", broker=tansu, topology=topology) as pub:
        for n in range(6):
            pub.send({"key": "k1", "n": n, "payload": "poison" if n == 3 else ""},
                     timestamp_ms=T0 + 10 * n)
    assert drain(topology, tansu, 6).stats["count"].dead_letters == 1
    assert replay(tansu, topology).replayed == {"events": 1}  # for node count, to events

    out = tmp_path / "events.jsonl"
    report = export(topology, "events", broker=tansu, out=str(out))
    assert report.records == 6 and report.replays == {"count": 1}
    assert sorted(r["n"] for r in _rows(out)) == list(range(6))  # each record once

    kept = export(topology, "events", broker=tansu, out=str(out), with_replays=True,
                  with_lineage=True)
    rows = _rows(out)
    assert kept.records == 7 and kept.replays == {"count": 1}
    assert [(r["n"], r["_replayed_for"]) for r in rows if r["_replayed_for"]] == [(3, "count")]
    assert sum(r["_replayed_for"] is None for r in rows) == 6

    from doa.cli.collect import export_cmd

    said = CliRunner().invoke(export_cmd, [COUNTING, "events", "--out", str(out),
                                           "--broker", tansu])
    assert said.exit_code == 0, said.output
    assert "exported 6 records" in said.output
    assert "left out 1 record that doa dlq --replay re-published for a node (count: 1)" in \
        " ".join(said.output.split()), said.output


def _replayed_copy(broker: str, stream: str, partition: int, offset: int, node: str) -> None:
    """Re-publish the record at ``offset`` as ``doa dlq --replay`` would for ``node``: same
    key, value and time, a new id, a ``doa.replay`` header naming the node."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False,
                             consumer_timeout_ms=2_000)
    tp = TopicPartition(stream, partition)
    consumer.assign([tp])
    consumer.seek(tp, offset)
    m = next(iter(consumer))
    consumer.close()
    lineage = lineage_of(m.headers)
    assert lineage is not None
    headers = [(LINEAGE_HEADER, pack_lineage(lineage._replace(id=b"r" * 16))),
               (REPLAY_HEADER, pack_replay(Replay(1, stream, partition, offset, node)))]
    producer = KafkaProducer(bootstrap_servers=broker, acks="all")
    producer.send(stream, value=m.value, key=m.key, partition=partition, headers=headers,
                  timestamp_ms=m.timestamp).get(timeout=30)
    producer.close()


def test_dataset_leaves_out_outcomes_replayed_for_a_node(tansu: str) -> None:
    t = load_topology(FRAUD)
    prepare(t, tansu)
    p = partition_for(b"c1", t.streams["outcomes"].partitions)

    def common(i: int) -> dict[str, Any]:
        return {"join": str(i), "key": "c1", "model": "scorer", "model_version": 1,
                "prediction": False}

    with Publisher("predictions", broker=tansu, topology=t) as pub:
        for i in range(3):
            pub.send({**common(i), "probabilities": {}, "score": None,
                      "features": {"amount": float(i)}, "categories": {},
                      "timestamp": T0 + 10 * i}, timestamp_ms=T0 + 10 * i)

    def outcome(i: int) -> None:
        with Publisher("outcomes", broker=tansu, topology=t) as pub:
            pub.send({**common(i), "label": True, "correct": False, "error": 1.0,
                      "delay_ms": 500, "timestamp": T0 + 10 * i + 500},
                     timestamp_ms=T0 + 10 * i + 500)

    outcome(0)
    outcome(1)
    _replayed_copy(tansu, "outcomes", p, 0, "watch_errors")  # outcome 0, for the detector
    outcome(2)
    with Publisher("models", broker=tansu, topology=t) as pub:  # learned labels 1..3
        pub.send({"model": "scorer", "action": "created", "version": 2, "from_version": 1,
                  "reason": "", "labels": 3, "metric": None, "partition": p,
                  "timestamp": T0 + 520, "blob": None}, timestamp_ms=T0 + 520)

    data = collect(t, "scorer", broker=tansu)
    assert [r["join"] for r in data.rows] == ["0", "1", "2"]
    assert data.missing == 0  # the copy of outcome 0 is not an outcome without prediction
    assert [r["learned_version"] for r in data.rows] == [2, 2, 2]  # rank 3, not 4
    assert data.replays == {"outcomes": 1}
