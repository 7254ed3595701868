# mypy: disable-error-code="no-untyped-call"
"""Drift-detector nodes (doa.detector), with River itself as the reference.

Every test runs the node through the in-memory harness (the same NodeRunner as on a broker:
encode, decode, step, validate, lineage) and compares with the bare River detector fed the
same values in the same order.
"""

from __future__ import annotations

import json
import math
import pickle
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from river import drift

from doa.detector import describe, detector_node, statistics
from doa.events import lineage_of
from doa.runtime.runner import NodeRunner
from doa.testing import Clock, Harness
from doa.topology.topology import Topology

T0 = 1_700_000_000_000
OBS = {"type": "record", "name": "Obs", "namespace": "dtest", "fields": [
    {"name": "key", "type": "string"},
    {"name": "x", "type": ["null", "double"], "default": None},
    {"name": "err", "type": "boolean"},
    {"name": "version", "type": "long", "default": 0},
]}

# name -> (fresh detector, signal field)
DETECTORS: dict[str, tuple[Callable[[], Any], str]] = {
    "ADWIN": (lambda: drift.ADWIN(), "x"),
    "PageHinkley": (lambda: drift.PageHinkley(), "x"),
    "KSWIN": (lambda: drift.KSWIN(seed=7), "x"),
    "DDM": (lambda: drift.binary.DDM(), "err"),
    "EDDM": (lambda: drift.binary.EDDM(), "err"),
    "ADWIN-on-bool": (lambda: drift.ADWIN(), "err"),
}


def attributes(d: Any) -> dict[str, Any]:
    """What each detector's statistics must be, spelled out attribute by attribute."""
    if isinstance(d, drift.ADWIN):
        return {"width": d.width, "estimation": d.estimation, "variance": d.variance,
                "total": d.total, "n_detections": d.n_detections}
    if isinstance(d, drift.PageHinkley):
        return {"x_mean": d._x_mean.get(), "sum_increase": d._sum_increase,
                "sum_decrease": d._sum_decrease, "min_increase": d._min_increase,
                "max_decrease": d._max_decrease}
    if isinstance(d, drift.KSWIN):
        return {"p_value": d.p_value, "n": d.n}
    if isinstance(d, drift.binary.DDM):
        return {"p": d._p.get(), "p_min": d._p_min, "s_min": d._s_min, "ps_min": d._ps_min}
    assert isinstance(d, drift.binary.EDDM)
    return {"error_distances": d._error_distances.get(),
            "error_distances_mean": d._error_distances.mean.get(), "n": d._n,
            "last_error": d._last_error, "n_errors": d._n_errors,
            "p2s_prime_max": d._p2s_prime_max}


def observations(n: int, seed: int = 1, keys: tuple[str, ...] = ("a",)) -> list[dict[str, Any]]:
    """Mean and error rate change every 400 records; every 13th ``x`` is missing (None)."""
    means, rates = (0.0, 1.5, -1.0, 2.0, 0.5, 3.0), (0.1, 0.4, 0.1, 0.5, 0.05, 0.3)
    rng = random.Random(seed)
    out = []
    for i in range(n):
        seg = i // 400
        x = None if i % 13 == 5 else rng.gauss(means[seg % 6], 1.0)
        out.append({"key": keys[i % len(keys)], "x": x, "err": rng.random() < rates[seg % 6],
                    "version": i // 1000})
    return out


def river_fires(proto: Any, values: list[Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(position, index in ``values``, attributes) each time a bare clone of ``proto`` fires."""
    det, seen, fired = proto.clone(), 0, []
    for i, v in enumerate(values):
        if v is None:
            continue
        det.update(v)
        seen += 1
        if det.drift_detected:
            fired.append((seen, i, attributes(det)))
    return fired


def make(tmp_path: Path, detector: Any, signal: str, *, key: str | None = None,
         partitions: int = 1) -> Topology:
    schemas = tmp_path / "schemas"
    schemas.mkdir(exist_ok=True)
    (schemas / "obs.avsc").write_text(json.dumps(OBS))
    t = Topology("drifty", schemas=schemas)
    obs = t.stream("obs", schema="dtest.Obs", key="key", partitions=partitions)
    drifts = t.stream("drifts", schema="doa.DriftEvent", key="node")
    t.add_node(detector_node("watch", reads=obs, writes=drifts, signal=signal,
                             detector=detector, key=key, model_version_field="version"))
    return t


def run(t: Topology, records: list[dict[str, Any]], batch_size: int = 256) -> Harness:
    """Publish ``records`` one millisecond apart from T0, run every node."""
    clock = Clock(T0)
    h = Harness(t, clock=clock, batch_size=batch_size)
    for r in records:
        h.publish("obs", [r])
        clock.advance(1)
    h.run()
    return h


@pytest.mark.parametrize("name", list(DETECTORS))
def test_node_fires_where_river_fires_with_every_field_right(tmp_path: Path, name: str) -> None:
    make_detector, signal = DETECTORS[name]
    records = observations(2400)
    values = [r["err"] if name in ("DDM", "EDDM") else  # River's binary API takes bools
              None if r[signal] is None else float(r[signal]) for r in records]
    expected = river_fires(make_detector(), values)
    assert len(expected) >= 2, f"{name} should fire several times on this stream"
    raw_outputs = []
    for batch_size in (1, 7, 256):
        h = run(make(tmp_path, make_detector(), signal), records, batch_size)
        assert h.dead_letters == []
        events = h.records("drifts")
        assert [e["position"] for e in events] == [p for p, _, _ in expected], batch_size
        raw_outputs.append([(r.value, r.headers) for part in h.logs["drifts"] for r in part])
    assert raw_outputs[0] == raw_outputs[1] == raw_outputs[2]  # bytes and lineage ids too
    inputs = h.logs["obs"][0]
    for event, (position, index, attrs) in zip(events, expected, strict=True):
        trigger = inputs[index]
        assert event == {
            "detector": describe(make_detector()), "signal": signal, "node": "watch",
            "key": None, "model_version": records[index]["version"], "position": position,
            "stream": "obs", "partition": 0, "offset": trigger.offset,
            "timestamp": T0 + index, "statistics": attrs,
        }
        assert trigger.offset == index and trigger.timestamp == T0 + index
        assert event["statistics"] and set(event["statistics"]) == set(attrs)
        lineage = lineage_of(event.headers)
        assert lineage is not None and lineage.node == "watch"
        assert lineage.parents == (lineage_of(trigger.headers).id,)  # type: ignore[union-attr]


def test_per_key_detectors_are_independent(tmp_path: Path) -> None:
    records = observations(3000, seed=3, keys=("a", "b", "c"))
    calm = random.Random(9)
    for r in records:  # key "b" is stationary: only "a" and "c" see the shifts
        if r["key"] == "b" and r["x"] is not None:
            r["x"] = calm.gauss(0.0, 1.0)
    h = run(make(tmp_path, drift.ADWIN(), "x", key="key"), records)
    events = h.records("drifts")
    got = {k: [e["position"] for e in events if e["key"] == k] for k in ("a", "b", "c")}
    for k in ("a", "b", "c"):
        mine = [r["x"] for r in records if r["key"] == k]
        fired = river_fires(drift.ADWIN(), mine)
        assert got[k] == [p for p, _, _ in fired], k
        for e, (_, _, attrs) in zip([e for e in events if e["key"] == k], fired, strict=True):
            assert records[e["offset"]]["key"] == k and e["statistics"] == attrs
    assert got["a"] and got["c"] and got["b"] == []
    state = h.state("watch")[0]
    assert sorted(state) == ["a", "b", "c"]
    assert {k: w.seen for k, w in state.items()} == {
        k: sum(r["key"] == k and r["x"] is not None for r in records) for k in "abc"}
    # one detector over the interleaved stream is something else
    single = run(make(tmp_path, drift.ADWIN(), "x"), records).records("drifts")
    assert [e["position"] for e in single] != [e["position"] for e in events]


def test_one_detector_per_input_partition(tmp_path: Path) -> None:
    keys = tuple(f"k{i}" for i in range(12))
    records = observations(3000, seed=5, keys=keys)
    h = run(make(tmp_path, drift.PageHinkley(threshold=20), "x", partitions=3), records)
    events = h.records("drifts")
    for p in range(3):
        log = h.logs["obs"][p]
        values = [records[int(r.timestamp - T0)]["x"] for r in log]
        fired = river_fires(drift.PageHinkley(threshold=20), values)
        mine = [e for e in events if e["partition"] == p]
        assert fired, p
        assert [(e["position"], e["offset"]) for e in mine] == [(q, log[i].offset)
                                                                for q, i, _ in fired]
    assert sorted(h.state("watch")) == [0, 1, 2]


# Known drift points: x ~ N(0,1), then N(1,1) from record 1000, then N(3,1) from record 2000;
# err ~ Bernoulli(0.1), then 0.3, then 0.6. Delay = position of the first drift event after
# a drift point minus that point. Measured with this generator for seeds 0..39 (bare River):
# no false alarm before record 1000 for these four configurations, and these largest delays,
# which the test asserts for seed 0 (whose own delays are in the comment).
KNOWN: dict[str, tuple[Callable[[], Any], str, tuple[int, int]]] = {
    # seed 0: 56, 16 (ADWIN checks every `clock` = 32 values); median over 40 seeds 56, 16
    "ADWIN": (lambda: drift.ADWIN(), "x", (88, 48)),
    # seed 0: 84, 45; median 87.5, 41.5 (threshold=50, the default: false alarms in 14/40)
    "PageHinkley": (lambda: drift.PageHinkley(threshold=100), "x", (133, 57)),
    # seed 0: 85, 54; median 74, 41 (alpha=0.005, window_size=100, the defaults: 30/40)
    "KSWIN": (lambda: drift.KSWIN(alpha=1e-5, window_size=300, stat_size=100, seed=42), "x",
              (94, 54)),
    # seed 0: 134, 143; median 144.5, 165.5 (warm_start=30, drift_threshold=3: 14/40)
    "DDM": (lambda: drift.binary.DDM(warm_start=200, drift_threshold=4.0), "err", (389, 427)),
    # EDDM is left out: with River's defaults it fired before record 1000 in 33 of 40 seeds
    # (and every 50-300 records while the error rate stays put), so no bound holds.
}


def shifted(seed: int = 0) -> list[dict[str, Any]]:
    gauss, coin = random.Random(seed), random.Random(seed)
    xs = [gauss.gauss((0.0, 1.0, 3.0)[i // 1000], 1.0) for i in range(3000)]
    errs = [coin.random() < (0.1, 0.3, 0.6)[i // 1000] for i in range(3000)]
    return [{"key": "s", "x": x, "err": e, "version": 0} for x, e in zip(xs, errs, strict=True)]


@pytest.mark.parametrize("name", list(KNOWN))
def test_fires_soon_after_known_drift_points_and_not_before(tmp_path: Path, name: str) -> None:
    make_detector, signal, (bound1, bound2) = KNOWN[name]
    positions = [e["position"] for e in
                 run(make(tmp_path, make_detector(), signal), shifted(0)).records("drifts")]
    assert positions and min(positions) > 1000, positions
    first = min(positions) - 1000
    second = min(p for p in positions if p > 2000) - 2000
    assert 0 < first <= bound1 and 0 < second <= bound2, (first, second)


@pytest.mark.parametrize("name", ["ADWIN", "PageHinkley", "KSWIN", "DDM", "EDDM"])
def test_state_pickles_and_a_split_run_equals_one_run(tmp_path: Path, name: str) -> None:
    make_detector, signal = DETECTORS[name]
    records = observations(1600 if name == "KSWIN" else 2400, seed=11)
    t = make(tmp_path, make_detector(), signal, key="key")
    whole = run(t, [{**r, "key": "ab"[i % 2]} for i, r in enumerate(records)])
    expected = [(r.value, r.headers) for r in whole.logs["drifts"][0]]
    assert expected
    runner = NodeRunner(t, t.nodes["watch"], clock=lambda: T0)
    log = whole.logs["obs"][0]
    half = len(log) // 2 + 3  # not on a batch boundary
    state, got = t.nodes["watch"].state(), list[tuple[bytes, Any]]()
    for part in (log[:half], log[half:]):
        for start in range(0, len(part), 200):
            result = runner.process(state, part[start:start + 200])
            got.extend((o.value, o.headers) for o in result.outputs)
            state = result.state
        state = pickle.loads(pickle.dumps(state, protocol=5))  # a snapshot, then a restart
    assert {k: w.seen for k, w in state.items()} == {
        k: w.seen for k, w in whole.state("watch")[0].items()}
    assert got == expected


def test_bad_signal_values_are_dead_lettered_and_leave_the_detector_alone(
        tmp_path: Path) -> None:
    records = observations(1200, seed=2)
    clean = run(make(tmp_path, drift.ADWIN(), "x"), records).records("drifts")
    spoiled = [dict(r) for r in records]
    for i in (100, 700, 1111):
        spoiled.insert(i, {"key": "a", "x": math.nan, "err": False, "version": 0})
    h = run(make(tmp_path, drift.ADWIN(), "x"), spoiled)
    assert [d["error_type"] for d in h.dead_letters] == ["ValueError"] * 3
    assert "finite" in h.dead_letters[0]["message"]
    assert [e["position"] for e in h.records("drifts")] == [e["position"] for e in clean]
    binary = run(make(tmp_path, drift.binary.DDM(), "x"), records[:50])
    assert {d["error_type"] for d in binary.dead_letters} == {"ValueError"}
    assert len(binary.dead_letters) == sum(r["x"] is not None for r in records[:50])


def test_detector_node_refuses_what_it_cannot_replay() -> None:
    with pytest.raises(ValueError, match="seed=None"):
        detector_node("w", reads="a", writes="b", signal="x", detector=drift.KSWIN())
    with pytest.raises(TypeError, match="River drift detector"):
        detector_node("w", reads="a", writes="b", signal="x", detector=object())
    with pytest.raises(ValueError, match="exactly one"):
        detector_node("w", reads="a", writes=["b", "c"], signal="x",  # type: ignore[arg-type]
                      detector=drift.ADWIN())
    proto = drift.ADWIN()
    node = detector_node("w", reads="a", writes="b", signal="x", detector=proto)
    state = node.state()
    assert state.detector is not proto and state.seen == 0 and proto.width == 0
    assert statistics(proto) == attributes(proto)
