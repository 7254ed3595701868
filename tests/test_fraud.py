"""The fraud example (topologies/fraud.py) in the in-memory harness: data, learning, drift.

The source is published in chunks with a harness run after each, as records arrive on a
broker: a drift event then reaches the learner while transactions still flow (published all
at once, the learner would read every transaction before the first drift event).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from rich.console import Console
from river.datasets import synth

from doa.cli.app import cli
from doa.kernels import avro_fields
from doa.testing import Harness
from topologies import fraud

REPO = Path(__file__).resolve().parent.parent
N = 12_000  # transactions: drift points at 4,000 and 8,000
SEED = 7
CHUNK = 400  # source records per harness run
DETECTION_BOUND = 250  # events after a drift point; measured with SEED: 145 and 91


def run_live(n: int = N, seed: int = SEED, chunk: int = CHUNK) -> Harness:
    items = list(fraud.demo_source(n, seed))
    h = Harness(fraud.topology, batch_size=500)
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        for stream in ("transactions", "labels"):
            rows = [(record, ts) for s, record, ts in part if s == stream]
            if rows:
                h.publish(stream, [r for r, _ in rows], timestamps=[ts for _, ts in rows])
        h.run()
    return h


@pytest.fixture(scope="module")
def live() -> Harness:
    return run_live()


def outcome_positions(h: Harness) -> dict[int, int]:
    """Offset in the outcomes stream -> the transaction index it is the outcome of."""
    return {o.offset: int(o["join"]) for o in h.records("outcomes")}


def accuracy(h: Harness, start: int, stop: int) -> float:
    found = [o["correct"] for o in h.records("outcomes")
             if start <= int(o["join"]) < stop and o["prediction"] is not None]
    return sum(found) / len(found)


# -- declaration ------------------------------------------------------------------------------
def test_the_topology_validates_and_doa_check_passes() -> None:
    assert fraud.topology.validate() == []
    result = CliRunner().invoke(cli, ["check", str(REPO / "topologies" / "fraud.py")])
    assert result.exit_code == 0, result.output
    assert "ok: topology 'fraud': 11 streams, 3 nodes" in result.output
    kinds = {n.name: n.kind for n in fraud.topology.nodes.values()}
    assert kinds == {"featurize": "kernel", "scorer": "learner", "watch_errors": "detector"}
    # the learner reads features, labels, drift events and commands together
    assert set(fraud.topology.nodes["scorer"].reads) == {"labels", "card_features", "drift",
                                                         "model_commands"}


def test_card_features_schema_holds_the_transaction_and_every_kernel_output() -> None:
    def fields(name: str) -> dict[str, Any]:
        schema = json.loads((REPO / "schemas" / name).read_text())
        return {f["name"]: f["type"] for f in schema["fields"]}

    features = fields("card_features.avsc")
    assert fields("transaction.avsc").items() <= features.items()
    assert {f["name"]: f["type"] for f in avro_fields(fraud.CARD_FEATURES)}.items() \
        <= features.items()
    assert set(fraud.MODEL_FEATURES) <= set(features)


# -- the source -------------------------------------------------------------------------------
def test_the_source_publishes_each_label_label_delay_transactions_after_it() -> None:
    n = 3000
    items = list(fraud.demo_source(n, SEED))
    times = [ts for _, _, ts in items]
    assert times == sorted(times), "publication order is time order"
    txns = [(r, ts) for s, r, ts in items if s == "transactions"]
    labels = [(r, ts) for s, r, ts in items if s == "labels"]
    assert [r["txn_id"] for r, _ in txns] == list(range(n))
    assert [r["txn_id"] for r, _ in labels] == list(range(n))
    assert [ts for _, ts in txns] == [fraud.timestamp(i) for i in range(n)]
    delay = fraud.timestamp(fraud.LABEL_DELAY) - fraud.T0
    assert [ts for _, ts in labels] == [fraud.timestamp(i) + delay for i in range(n)]
    for (txn, _), (label, _) in zip(txns, labels, strict=True):
        assert label["card_id"] == txn["card_id"]
    # a label goes out just before the transaction with its timestamp (labels first on ties)
    position = {(s, r["txn_id"]): i for i, (s, r, _) in enumerate(items)}
    for i in range(n - fraud.LABEL_DELAY):
        assert position[("labels", i)] < position[("transactions", i + fraud.LABEL_DELAY)]
    cards = {r["card_id"] for r, _ in txns}
    assert len(cards) == fraud.CARDS and all(c.startswith("card-") for c in cards)
    assert items == list(fraud.demo_source(n, SEED))
    assert items != list(fraud.demo_source(n, SEED + 1))


def test_the_concept_changes_at_the_drift_points() -> None:
    n = 6000
    rules = [synth.Agrawal(classification_function=f)._classification_functions[f]
             for f in fraud.CONCEPTS]
    bounds = [0, *fraud.drift_points(n), n]
    for i, (x, y) in enumerate(fraud.samples(n, SEED)):
        concept = sum(i >= p for p in bounds[1:-1])
        margin = 3 * fraud.width(max(bounds[1], 1))
        if all(abs(i - p) > margin for p in bounds[1:-1]):
            assert y == bool(rules[concept](**x)), (i, concept)


# -- learning, drift, reset -------------------------------------------------------------------
def test_the_learner_is_well_above_chance(live: Harness) -> None:
    p1, p2 = fraud.drift_points(N)
    labels = {int(r["txn_id"]): r["is_fraud"] for r in live.records("labels")}
    for start, stop in ((p1 - 1000, p1), (p2 - 1000, p2), (N - 1000, N)):
        majority = max(sum(labels[i] for i in range(start, stop)) / 1000,
                       1 - sum(labels[i] for i in range(start, stop)) / 1000)
        assert accuracy(live, start, stop) > max(0.85, majority + 0.2), (start, stop)
    state = live.state("scorer")[0]
    assert state["labels"] == N and live.records("unmatched") == []
    assert live.dead_letters == []


def test_the_detector_fires_after_each_drift_point_and_not_before(live: Harness) -> None:
    p1, p2 = fraud.drift_points(N)
    at = outcome_positions(live)
    fired = [at[d["offset"]] for d in live.records("drift")]
    assert fired, "no drift event"
    assert min(fired) > p1, f"fired before the first drift point: {fired}"
    assert p1 < fired[0] <= p1 + DETECTION_BOUND, fired
    assert any(p2 < f <= p2 + DETECTION_BOUND for f in fired), fired
    assert len(fired) == 2, fired


def test_the_learner_resets_its_model_on_each_drift_event(live: Harness) -> None:
    drifts = live.records("drift")
    changes = [m for m in live.records("models") if m["action"] != "created"]
    assert [m["action"] for m in changes] == ["reset"] * len(drifts)
    for d, m in zip(drifts, changes, strict=True):
        assert f"fired at position {d['position']}" in m["reason"]
        assert m["version"] > d["model_version"] and m["blob"] is None
    # predictions after a reset come from the new version, and from no older one
    versions = [p["model_version"] for p in live.records("predictions")]
    assert versions == sorted(versions)
    for m in changes:
        assert m["version"] in versions


def test_memory_demo_shows_the_summary() -> None:
    from doa.demo.run import run_memory_demo

    buffer = io.StringIO()
    run_memory_demo(str(REPO / "topologies" / "fraud.py"), N,
                    Console(file=buffer, width=120, highlight=False))
    out = buffer.getvalue()
    assert "fraud in memory: published 12000 to transactions, 12000 to labels" in out
    assert "accuracy around the drift points" in out
    rows = [line.split() for line in out.splitlines()
            if line.strip().startswith(("4,000", "8,000"))]
    assert [r[0] for r in rows] == ["4,000", "8,000"]
    # the delay in events and in seconds of event time (RATE events/s)
    assert all(r[-3] == "events" and r[4] != "not" for r in rows), rows
    for r in rows:
        assert r[-1] == "s)" and float(r[-2][1:]) == pytest.approx(
            int(r[-4].replace(",", "")) / fraud.RATE, abs=0.005)
    assert "labels unmatched: none" in out
    assert "reset to version" in out
