"""Outputs carry event time: the same log gives the same timestamps, merges and results.

An output's timestamp is its input's (the latest parent's), never the wall clock, so a node
that lags, a busy machine or a replay changes latency only (DESIGN invariant 8).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from river import evaluate, linear_model, metrics, preprocessing

from doa.client import Publisher
from doa.engines import EngineSettings
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.conftest import ROOT
from tests.integration.helpers import read_stream
from tests.test_learner import SCHEMAS, phishing

pytestmark = pytest.mark.broker

FRAUD = str(ROOT / "topologies" / "fraud.py")
N = 2400  # transactions (and as many labels) of the fraud source
BASE = 1_700_000_000_000


def slowed(t: Topology, node: str, seconds: float) -> None:
    """Make ``node`` sleep ``seconds`` in every step (a test-only lagging node)."""
    inner = t.nodes[node].step

    def step(state: Any, batch: list[Any]) -> Any:
        time.sleep(seconds)
        return inner(state, batch)

    t.nodes[node] = dataclasses.replace(t.nodes[node], step=step)


def run_until_quiet(t: Topology, address: str, wanted: dict[str, int],
                    settings: EngineSettings | None = None, quiet_s: float = 1.5) -> None:
    """Run every node until each has read ``wanted[node]`` records and then none for a while."""
    import asyncio

    from doa.engines.launch import run_nodes

    last: list[Any] = [None, time.monotonic()]

    def done(stats: dict[str, Any]) -> bool:
        counts = tuple(s.records_in for s in stats.values())
        if counts != last[0]:
            last[:] = [counts, time.monotonic()]
            return False
        return all(stats[n].records_in >= c for n, c in wanted.items()) and \
            time.monotonic() - last[1] >= quiet_s

    asyncio.run(run_nodes(t, address, list(t.nodes), seconds=240, settings=settings,
                          signals=False, until=done))


def fraud_run(address: str, slow_s: float) -> dict[str, list[tuple[int, dict[str, Any]]]]:
    """The fraud topology over its source's first ``N`` transactions: stream → records."""
    t = load_topology(FRAUD)
    if slow_s:
        slowed(t, "featurize", slow_s)
    import topologies.fraud as fraud

    prepare(t, address)
    publishers = {s: Publisher(s, broker=address, topology=t) for s in ("transactions", "labels")}
    try:
        for stream, record, ts in fraud.demo_source(N):
            publishers[stream].send(record, timestamp_ms=ts)
    finally:
        for p in publishers.values():
            p.close()
    settings = EngineSettings.from_env()
    settings = dataclasses.replace(settings, max_records=64, max_idle_ms=1000)
    run_until_quiet(t, address, {"featurize": N, "scorer": 2 * N, "watch_errors": N}, settings)
    return {s: [(e.timestamp, comparable(e)) for e in read_stream(address, t, s, N, idle_s=10)]
            for s in ("card_features", "predictions", "outcomes")}


def comparable(record: dict[str, Any]) -> dict[str, Any]:
    """The record with NaN as the string "nan" (NaN equals nothing, not even itself)."""
    return {k: "nan" if isinstance(v, float) and v != v else
            comparable(v) if isinstance(v, dict) else v for k, v in record.items()}


@pytest.mark.brokers("tansu",
                     reason="the merge of a lagging input is doa's; timestamps on Kafka: the "
                            "replay test; CI time")
def test_a_lagging_feature_node_changes_no_timestamp_and_no_result(
        broker: str, second_broker: str) -> None:
    quick = fraud_run(broker, 0.0)
    lagging = fraud_run(second_broker, 0.05)  # 50 ms more per batch of 64: ~4x slower
    assert [len(quick[s]) for s in quick] == [N, N, N]
    for stream in quick:
        assert lagging[stream] == quick[stream], stream
    # Event time: features at their transaction's time, outcomes at their label's.
    import topologies.fraud as fraud

    assert [ts for ts, _ in quick["card_features"]] == [fraud.timestamp(i) for i in range(N)]
    assert [ts for ts, _ in quick["predictions"]] == [fraud.timestamp(i) for i in range(N)]
    delay = fraud.timestamp(fraud.LABEL_DELAY) - fraud.T0
    assert [ts for ts, _ in quick["outcomes"]] == [fraud.timestamp(i) + delay for i in range(N)]


def kernel_learner(name: str = "delay0", features: str = "features") -> Topology:
    """Raw phishing rows -> a kernel adding an EW mean of one field -> a learner."""
    from doa.kernels import ewm

    t = Topology(name, schemas=SCHEMAS)
    t.stream("rows", schema="testing.Phish")
    t.stream(features, schema="testing.PhishFeatures")
    t.stream("labels", schema="testing.PhishLabel")
    for s, schema in (("predictions", "doa.Prediction"), ("outcomes", "doa.Outcome"),
                      ("metrics", "doa.Metric"), ("unmatched", "doa.UnmatchedLabel")):
        t.stream(s, schema=schema)
    t.kernel("enrich", reads="rows", writes=features, key="https",
             features={"age": ("age_of_domain", ewm(alpha=0.3))})
    t.learner("model", features=features, labels="labels", predictions="predictions",
              outcomes="outcomes", metrics="metrics", unmatched="unmatched",
              model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
              metric=metrics.Accuracy(), join="id", label="label", metrics_every=250,
              feature_fields=FIELDS)
    return t


FIELDS = ["empty_server_form_handler", "popup_window", "https", "request_from_other_domain",
          "anchor_from_other_domain", "is_popular", "long_url", "age_of_domain", "ip_in_url",
          "age_mean", "age_var"]


def test_delay_0_labels_behind_a_kernel_node_are_all_learned(broker: str) -> None:
    """Each label has its transaction's timestamp: the kernel's features keep it, so the
    learner predicts then learns on every one, as progressive_val_score with delay 0."""
    rows = phishing()[:1000]
    t = kernel_learner()
    prepare(t, broker)
    with Publisher("rows", broker=broker, topology=t) as rows_pub, \
            Publisher("labels", broker=broker, topology=t) as labels_pub:
        for i, (x, y) in enumerate(rows):
            labels_pub.send({"id": i, "label": y}, timestamp_ms=BASE + i)
            rows_pub.send({"id": i, **x}, timestamp_ms=BASE + i)
    run_until_quiet(t, broker, {"enrich": len(rows), "model": 2 * len(rows)})
    features = read_stream(broker, t, "features", len(rows))
    assert [f.timestamp for f in features] == [BASE + i for i in range(len(rows))]
    assert read_stream(broker, t, "unmatched", idle_s=1) == []
    outcomes = read_stream(broker, t, "outcomes", len(rows))
    assert sorted(o["join"] for o in outcomes) == sorted(str(i) for i in range(len(rows)))
    xs = [({f: e[f] for f in FIELDS}, y) for e, (_, y) in zip(features, rows, strict=True)]
    reference = evaluate.progressive_val_score(
        xs, preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metrics.Accuracy(), moment=None, delay=None)
    final = read_stream(broker, t, "metrics", len(rows) // 250)[-1]
    assert final["labels"] == len(rows)
    assert final["value"] == pytest.approx(reference.get(), abs=1e-12, rel=0)


def test_a_replay_from_offset_0_reproduces_the_timestamps(broker: str) -> None:
    """The kernel node replayed into a fresh topic (a new group, a new output stream) writes
    the same records with the same timestamps, however much later it runs."""
    rows = phishing()[:500]
    first = kernel_learner("first", "features")
    prepare(first, broker)
    with Publisher("rows", broker=broker, topology=first) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + 7 * i)
    del first.nodes["model"]
    run_until_quiet(first, broker, {"enrich": len(rows)})
    time.sleep(1.0)  # the wall clock moves on; event time must not
    replay = kernel_learner("replay", "features_again")
    del replay.nodes["model"]
    prepare(replay, broker)
    run_until_quiet(replay, broker, {"enrich": len(rows)})
    original = read_stream(broker, first, "features", len(rows))
    again = read_stream(broker, replay, "features_again", len(rows))
    assert [(e.timestamp, dict(e)) for e in again] == [(e.timestamp, dict(e)) for e in original]
    assert [e.timestamp for e in original] == [BASE + 7 * i for i in range(len(rows))]
