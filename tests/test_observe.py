"""Metrics without a broker: the metered runner's counts against a plain count of what the
runner returned, the collector's exposition parsed with prometheus_client's own parser, the
server on a free port, and one-line errors for a missing extra."""

from __future__ import annotations

import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from doa.engines import NodeStats
from doa.errors import DoaError
from doa.observe import check_extras, observe
from doa.observe.meter import MeteredRunner
from doa.observe.metrics import DoaCollector, MetricsServer, metrics_port
from doa.runtime.runner import RawRecord
from doa.topology.topology import Topology

SCHEMAS = Path(__file__).resolve().parent / "schemas"


def two_by_two() -> Topology:
    """A node reading two streams and writing two; ``poison`` payloads make its step raise."""
    t = Topology("obs", schemas=SCHEMAS)
    a = t.stream("a", schema="testing.Event", key="key", partitions=2)
    b = t.stream("b", schema="testing.Event", key="key", partitions=2)
    evens = t.stream("evens", schema="testing.Count", key="key", partitions=2)
    odds = t.stream("odds", schema="testing.Count", key="key", partitions=2)

    @t.node(reads=[a, b], writes=[evens, odds], state=lambda: 0)
    def split(state: int, batch: list[Any]) -> tuple[int, list[Any]]:
        out = []
        for e in batch:
            if e["payload"] == "poison":
                raise ValueError("poison")
            target = "evens" if e["n"] % 2 == 0 else "odds"
            out.append((e, target, {"key": e["key"], "n": e["n"], "count": 1, "total": 1}))
            if e["n"] % 3 == 0:  # a second output for some
                out.append((e, "odds", {"key": e["key"], "n": e["n"], "count": 2, "total": 2}))
        return state + len(batch), out

    return t


def batches(t: Topology) -> list[list[RawRecord]]:
    codec = t.codec("a")
    out: list[list[RawRecord]] = []
    offset = 0
    for size in (1, 7, 30, 120):
        batch = []
        for i in range(size):
            stream = "a" if i % 3 else "b"
            if i % 11 == 5:
                value = b"not avro"
            else:
                payload = "poison" if i % 13 == 4 else ""
                value = codec.encode({"key": f"k{i % 4}", "n": i, "payload": payload})
            batch.append(RawRecord(stream, 0, offset, 1000 + offset, None, value, ()))
            offset += 1
        out.append(batch)
    return out


def test_metered_runner_counts_what_the_runner_returned() -> None:
    t = two_by_two()
    runner = MeteredRunner(t, t.nodes["split"], clock=lambda: 0)
    want_in: dict[str, int] = {}
    want_out: dict[str, int] = {}
    want_dead = 0
    state = 0
    for batch in batches(t):
        result = runner.process(state, batch)
        state = result.state
        for r in batch:  # the reference: a plain loop over inputs and returned outputs
            want_in[r.stream] = want_in.get(r.stream, 0) + 1
        for o in result.outputs:
            if o.stream == t.dead_letters.name:
                want_dead += 1
            else:
                want_out[o.stream] = want_out.get(o.stream, 0) + 1
    m = runner.meter
    assert m.records_in == want_in
    assert m.records_out == want_out and set(want_out) == {"evens", "odds"}
    assert sum(m.dead_letters.values()) == want_dead > 0
    assert set(m.dead_letters) == {"a", "b"}  # by the stream the dead record was read from
    assert m.sizes.counts[-1] == 0 and sum(m.sizes.counts) == 4
    assert m.sizes.total == 1 + 7 + 30 + 120
    assert sum(m.seconds.counts) == 4 and m.seconds.total > 0


class FakeConsumer:
    def __init__(self, high: dict[tuple[str, int], int]) -> None:
        self.high = high

    def highwater(self, tp: Any) -> int | None:
        if (tp.topic, tp.partition) not in self.high:
            raise RuntimeError("not assigned")
        return self.high[(tp.topic, tp.partition)]


class FakeWorker:
    """What the collector reads of a kafka-engine worker."""

    def __init__(self, t: Topology, node: str) -> None:
        self.node = t.nodes[node]
        self.stats = NodeStats(snapshots=3, partitions=2)
        self.runner = MeteredRunner(t, self.node, clock=lambda: 0)
        self.states: dict[int, Any] = {}
        self.positions: dict[int, dict[str, int]] = {}
        self._consumer = FakeConsumer({})


def families(registry: CollectorRegistry) -> dict[str, Any]:
    text = generate_latest(registry).decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def value(fams: dict[str, Any], sample: str, **labels: str) -> float:
    name = sample.removesuffix("_total").removesuffix("_bucket").removesuffix("_count") \
        .removesuffix("_sum")
    found = [s.value for s in fams[name].samples
             if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(found) == 1, (sample, labels, fams[name].samples)
    return float(found[0])


def test_collector_exposes_the_meter_lag_and_learner_state() -> None:
    from river import metrics

    t = two_by_two()
    w = FakeWorker(t, "split")
    for batch in batches(t):
        w.runner.process(0, batch)
    accuracy = metrics.Accuracy()
    for y, p in [(True, True), (False, True), (True, True), (False, False)]:
        accuracy.update(y, p)
    w.states = {0: {"metric": accuracy, "version": 4}, 1: 7}
    w.positions = {0: {"a": 40, "b": 100}, 1: {"a": 0}}
    w._consumer = FakeConsumer({("a", 0): 52, ("b", 0): 100, ("a", 1): 9})
    w.runner.meter.snapshot_bytes = 1234
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DoaCollector("obs", [w]))
    fams = families(registry)
    m = w.runner.meter
    node = {"topology": "obs", "node": "split"}
    for stream in ("a", "b"):
        assert value(fams, "doa_records_in_total", stream=stream, **node) == m.records_in[stream]
        assert value(fams, "doa_records_dead_lettered_total", stream=stream, **node) == \
            m.dead_letters[stream]
    for stream in ("evens", "odds"):
        assert value(fams, "doa_records_out_total", stream=stream, **node) == \
            m.records_out[stream]
    assert value(fams, "doa_batch_records_count", **node) == 4
    assert value(fams, "doa_batch_records_sum", **node) == 158
    assert value(fams, "doa_batch_records_bucket", le="10.0", **node) == 2  # sizes 1 and 7
    assert value(fams, "doa_batch_records_bucket", le="+Inf", **node) == 4
    assert value(fams, "doa_step_seconds_count", **node) == 4
    assert value(fams, "doa_consumer_lag_records", stream="a", partition="0", **node) == 12
    assert value(fams, "doa_consumer_lag_records", stream="b", partition="0", **node) == 0
    assert value(fams, "doa_consumer_lag_records", stream="a", partition="1", **node) == 9
    assert len(fams["doa_consumer_lag_records"].samples) == 3  # (b, 1): highwater not known
    assert value(fams, "doa_snapshots_total", **node) == 3
    assert value(fams, "doa_snapshot_bytes_total", **node) == 1234
    assert value(fams, "doa_partitions_assigned", **node) == 2
    assert value(fams, "doa_learner_metric", partition="0", metric="Accuracy", **node) == 0.75
    assert value(fams, "doa_model_version", partition="0", **node) == 4
    assert not fams["doa_drift_events"].samples  # not a detector


def test_collector_survives_a_broken_worker_and_stays_out_of_the_global_registry() -> None:
    t = two_by_two()
    good = FakeWorker(t, "split")
    good.runner.process(0, batches(t)[1])
    broken = FakeWorker(t, "split")
    broken.states = None  # type: ignore[assignment]  # reading it fails mid-node
    server = MetricsServer(DoaCollector("obs", [broken, good]), 0, addr="127.0.0.1")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        in_a = [s for s in fams["doa_records_in"].samples
                if s.name == "doa_records_in_total" and s.labels["stream"] == "a"]
        assert [s.value for s in in_a] == [good.runner.meter.records_in["a"]]
        assert "doa_records_in_total" not in generate_latest(REGISTRY).decode()
    finally:
        server.close()


def test_a_port_in_use_is_one_line() -> None:
    t = two_by_two()
    first = MetricsServer(DoaCollector("obs", []), 0, addr="127.0.0.1")
    try:
        with pytest.raises(DoaError, match=f"cannot listen on 127.0.0.1:{first.port}") as e:
            MetricsServer(DoaCollector("obs", [FakeWorker(t, "split")]), first.port,
                          addr="127.0.0.1")
        assert "\n" not in str(e.value)
    finally:
        first.close()


def test_observe_serves_and_stops() -> None:
    t = two_by_two()
    said: list[str] = []
    obs = observe(t, "localhost:9", [FakeWorker(t, "split")], port=0, environ={},
                  say=said.append)
    port = obs.metrics_port
    assert port and said == [f"metrics on http://localhost:{port}/metrics"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        assert r.status == 200
    obs.close()
    obs.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_port_from_the_environment() -> None:
    assert metrics_port({"DOA_METRICS_PORT": " 9464 "}) == 9464
    assert metrics_port({"DOA_METRICS_PORT": ""}) is None
    with pytest.raises(DoaError, match="DOA_METRICS_PORT='x'"):
        metrics_port({"DOA_METRICS_PORT": "x"})
    with pytest.raises(DoaError, match="0-65535"):
        metrics_port({"DOA_METRICS_PORT": "70000"})


def test_missing_extras_are_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import doa.observe

    monkeypatch.setattr(doa.observe, "_installed", lambda module: False)
    check_extras(None, {})  # nothing asked for
    with pytest.raises(DoaError, match=r"doa\[metrics\]") as e:
        check_extras(9464, {})
    assert "\n" not in str(e.value)
    with pytest.raises(DoaError, match=r"doa\[metrics\]"):
        check_extras(None, {"DOA_METRICS_PORT": "9464"})
    with pytest.raises(DoaError, match=r"OPENLINEAGE_URL.*doa\[openlineage\]"):
        check_extras(None, {"OPENLINEAGE_URL": "http://marquez:5000"})


def test_engines_run_nodes_with_a_metered_runner() -> None:
    from doa.engines.kafka import NodeWorker

    t = two_by_two()
    assert isinstance(NodeWorker(t, t.nodes["split"], "localhost:9").runner, MeteredRunner)


def test_the_server_thread_is_gone_after_close() -> None:
    before = set(threading.enumerate())
    server = MetricsServer(DoaCollector("obs", []), 0, addr="127.0.0.1")
    server.close()
    assert set(threading.enumerate()) <= before


def test_a_detector_shows_its_drift_count_at_zero_before_any_drift() -> None:
    # walkthrough: doa_drift_events_total was missing from /metrics until the first drift,
    # so an alert on its rate had no series to watch
    from doa.topology.loader import load_topology

    t = load_topology("topologies/fraud.py")
    w = FakeWorker(t, "watch_errors")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DoaCollector("fraud", [w]))
    fams = families(registry)
    drifts = t.nodes["watch_errors"].writes
    assert len(drifts) == 1
    assert value(fams, "doa_drift_events_total", topology="fraud", node="watch_errors",
                 stream=drifts[0]) == 0
