"""Feature kernels: each equals its own pure-Python original, River's statistics or a
recomputation from the raw events, whatever the batching; and the kernel node in the harness.

Expected values are computed here from each key's events (River, or plain Python over the
events inside each window), never by calling a kernel.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
import os
import pickle
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import stats, utils

import doa.testing
from doa.errors import StepError
from doa.events import Event
from doa.kernels import (
    Kernel,
    KernelState,
    avro_fields,
    ewm,
    jit_kernel,
    kernel_node,
    rate,
    since_previous,
    sliding,
    tumbling,
)
from doa.testing import Harness
from doa.topology.topology import Topology

REPO = Path(__file__).resolve().parent.parent
TOL = 1e-9
EXAMPLES = settings(max_examples=60, deadline=None)


def _running_sum(slots, times_ms, values, state, params, out):  # type: ignore[no-untyped-def]
    """A user's kernel: running sum of values per key, scaled by params[0]."""
    for i in range(slots.shape[0]):
        s = slots[i]
        state[s, 0] += values[i]
        out[i, 0] = state[s, 0] * params[0]


running_sum_fn = jit_kernel(_running_sum)


def running_sum(scale: float = 1.0) -> Kernel:
    return Kernel("running_sum", running_sum_fn, 1, ("total",), (scale,))


# -- generated data ---------------------------------------------------------------------------
@st.composite
def event_arrays(draw: Any, ordered: bool = True, max_n: int = 60) -> tuple[Any, Any, Any]:
    """(slots, times_ms, values) of a few keys; times non-decreasing unless not ``ordered``."""
    n = draw(st.integers(1, max_n))
    slots = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    low = 0 if ordered else -40
    deltas = draw(st.lists(st.integers(low, 40), min_size=n, max_size=n))
    values = draw(st.lists(st.one_of(
        st.floats(-1e3, 1e3, allow_nan=False), st.integers(-5, 5).map(float)),
        min_size=n, max_size=n))
    start = draw(st.sampled_from([0, 1_700_000_000_000]))
    times = start + np.cumsum(deltas)
    return (np.array(slots, dtype=np.int64), times.astype(np.int64),
            np.array(values, dtype=np.float64))


kernels = st.one_of(
    st.floats(0.01, 1.0).map(ewm),
    st.integers(1, 60).map(tumbling),
    st.tuples(st.integers(1, 60), st.integers(1, 8)).map(lambda a: sliding(*a)),
    st.tuples(st.integers(1, 60), st.integers(1, 8)).map(lambda a: rate(*a)),
    st.just(since_previous()),
    st.floats(-2.0, 2.0).map(running_sum),
)


def per_key(slots: Any, times: Any, values: Any) -> dict[int, list[tuple[int, int, float]]]:
    """key -> [(event index, time, value), ...] in order."""
    seen: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
    for i, (s, t, v) in enumerate(zip(slots.tolist(), times.tolist(), values.tolist(),
                                      strict=True)):
        seen[s].append((i, t, v))
    return seen


def close(a: Any, b: Any) -> bool:
    return bool(np.allclose(a, b, rtol=TOL, atol=TOL, equal_nan=True))


# -- kernels against themselves ---------------------------------------------------------------
@EXAMPLES
@given(kernels, st.booleans().flatmap(lambda o: event_arrays(ordered=o)))
def test_jitted_kernel_equals_its_py_func(kernel: Kernel, events: Any) -> None:
    jit_state, py_state = kernel.new_state(4), kernel.new_state(4)
    jit_out = kernel.run(*events, jit_state)
    py_out = kernel.run(*events, py_state, python=True)
    assert close(jit_out, py_out)
    assert close(jit_state, py_state)


@EXAMPLES
@given(kernels, st.booleans().flatmap(lambda o: event_arrays(ordered=o)), st.data())
def test_batches_equal_one_call_exactly(kernel: Kernel, events: Any, data: Any) -> None:
    slots, times, values = events
    whole_state = kernel.new_state(4)
    whole = kernel.run(slots, times, values, whole_state)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(slots) - 1), max_size=len(slots)))
                  if len(slots) > 1 else set())
    for pieces in ([*cuts], list(range(1, len(slots)))):  # random sizes; one event at a time
        state = kernel.new_state(4)
        bounds = [0, *pieces, len(slots)]
        outs = [kernel.run(slots[a:b], times[a:b], values[a:b], state)
                for a, b in itertools.pairwise(bounds)]
        assert np.array_equal(np.concatenate(outs), whole, equal_nan=True)
        assert np.array_equal(state, whole_state, equal_nan=True)


# -- kernels against River and recomputation --------------------------------------------------
@EXAMPLES
@given(st.floats(0.01, 1.0), event_arrays())
def test_ewm_equals_river(alpha: float, events: Any) -> None:
    out = ewm(alpha).run(*events, ewm(alpha).new_state(4))
    for seq in per_key(*events).values():
        mean, var = stats.EWMean(fading_factor=alpha), stats.EWVar(fading_factor=alpha)
        for n, (i, _, x) in enumerate(seq):
            before_mean, before_var = mean.get(), var.get()
            noise = 1e-14 * (before_var + before_mean**2)  # the documented threshold
            mean.update(x)
            var.update(x)
            assert out[i, 0] == mean.get() and out[i, 1] == var.get()  # River's own formula
            if n == 0 or before_var < noise * (1 - 1e-9):
                assert out[i, 2] == 0.0
            elif before_var > noise * (1 + 1e-9):
                assert close(out[i, 2], (x - before_mean) / math.sqrt(before_var))


def window_stats(xs: list[float]) -> list[float]:
    if not xs:
        return [0.0, 0.0, math.nan, math.nan, math.nan]
    return [len(xs), math.fsum(xs), math.fsum(xs) / len(xs), min(xs), max(xs)]


@EXAMPLES
@given(st.integers(1, 60), event_arrays())
def test_sliding_equals_river_time_rolling_and_recomputation(width: int, events: Any) -> None:
    out = sliding(width, capacity=64).run(*events, sliding(width, 64).new_state(4))
    for seq in per_key(*events).values():
        river_mean = utils.TimeRolling(stats.Mean, period=dt.timedelta(milliseconds=width))
        for n, (i, t, x) in enumerate(seq):
            river_mean.update(x, t=dt.datetime(1970, 1, 1) + dt.timedelta(milliseconds=t))
            inside = [v for _, u, v in seq[: n + 1] if t - width < u <= t]
            assert close(out[i], window_stats(inside))
            assert close(out[i, 2], river_mean.get())


@EXAMPLES
@given(st.integers(1, 60), st.integers(1, 6), event_arrays())
def test_sliding_keeps_the_last_capacity_events(width: int, cap: int, events: Any) -> None:
    out = sliding(width, cap).run(*events, sliding(width, cap).new_state(4))
    for seq in per_key(*events).values():
        for n, (i, t, _) in enumerate(seq):
            inside = [v for _, u, v in seq[max(0, n + 1 - cap): n + 1] if t - width < u <= t]
            assert close(out[i], window_stats(inside))


@EXAMPLES
@given(st.integers(1, 60), event_arrays())
def test_tumbling_equals_recomputation(width: int, events: Any) -> None:
    out = tumbling(width).run(*events, tumbling(width).new_state(4))
    for seq in per_key(*events).values():
        for n, (i, t, _) in enumerate(seq):
            inside = [v for _, u, v in seq[: n + 1] if u // width == t // width]
            assert close(out[i], window_stats(inside))


@EXAMPLES
@given(st.integers(1, 60), st.integers(1, 6), event_arrays())
def test_rate_and_since_previous_equal_recomputation(width: int, cap: int, events: Any) -> None:
    per_s = rate(width, cap).run(*events, rate(width, cap).new_state(4))
    gaps = since_previous().run(*events, since_previous().new_state(4))
    for seq in per_key(*events).values():
        for n, (i, t, _) in enumerate(seq):
            inside = [u for _, u, _ in seq[max(0, n + 1 - cap): n + 1] if t - width < u <= t]
            assert close(per_s[i, 0], len(inside) / (width / 1000))
            assert close(gaps[i, 0], t - seq[n - 1][1] if n else math.nan)


def test_late_events_follow_the_documented_rules() -> None:
    slots, times = [0, 0, 0], [100, 250, 120]  # the third event is late
    assert tumbling(100).run(slots, times, [1.0, 2.0, 4.0])[:, 0].tolist() == [1, 1, 2]
    assert sliding(100).run(slots, times, [1.0, 2.0, 4.0])[2, 0] == 1  # outside (150, 250]
    assert since_previous().run(slots, times, [0.0] * 3)[:, 0].tolist()[1:] == [150.0, -130.0]


def test_constructors_refuse_bad_parameters() -> None:
    for bad in (lambda: ewm(0.0), lambda: ewm(1.5), lambda: tumbling(0),
                lambda: sliding(10, 0), lambda: rate(2.5)):  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            bad()
    with pytest.raises(ValueError, match="integer_outputs"):
        Kernel("k", running_sum_fn, 1, ("a",), integer_outputs=frozenset({"b"}))


# -- the node ---------------------------------------------------------------------------------
FEATURES = {
    "ew": ("v", ewm(0.3)),
    "win": ("v", sliding(50, capacity=32)),
    "tum": ("v", tumbling(40)),
    "load": (None, rate(50, capacity=32)),
    "gap": (None, since_previous()),
    "sum": ("v", running_sum(2.0)),
}


def node_topology(tmp_path: Path) -> Topology:
    reading = {"type": "record", "name": "reading", "namespace": "t", "fields": [
        {"name": "k", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "v", "type": ["null", "double"], "default": None},
        {"name": "note", "type": "string", "default": ""}]}
    feats = {"type": "record", "name": "features", "namespace": "t", "fields": [
        {"name": "k", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "v", "type": ["null", "double"]}, *avro_fields(FEATURES)]}
    for name, schema in (("reading", reading), ("features", feats)):
        (tmp_path / f"{name}.avsc").write_text(json.dumps(schema))
    t = Topology("kt", schemas=tmp_path)
    src = t.stream("readings", schema="t.reading", key="k", partitions=2)
    dst = t.stream("features", schema="t.features", key="k", partitions=2)
    t.add_node(kernel_node("feats", src, dst, key="k", time="ts", features=FEATURES,
                           select=["k", "ts", "v"], initial_keys=2))
    return t


def readings(n: int, seed: int = 3) -> list[dict[str, Any]]:
    rnd = np.random.default_rng(seed)
    return [{"k": f"key-{rnd.integers(7)}", "ts": 1_000 + 7 * i + int(rnd.integers(5)),
             "v": round(float(rnd.normal(10, 3)), 3), "note": "x"} for i in range(n)]


def expected(records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Every feature of every record, from River and recomputation over its key's prefix."""
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    out: dict[tuple[str, int], dict[str, Any]] = {}
    for r in records:
        seq = by_key[r["k"]]
        seq.append(r)
        t = r["ts"]
        ts_v = [(p["ts"], p["v"]) for p in seq]
        mean, var = stats.EWMean(0.3), stats.EWVar(0.3)
        for _, v in ts_v:
            mean.update(v)
            var.update(v)
        win = window_stats([v for u, v in ts_v if t - 50 < u <= t])
        tum = window_stats([v for u, v in ts_v if u // 40 == t // 40])
        out[(r["k"], t)] = {
            "ew_mean": mean.get(), "ew_var": var.get(),
            **dict(zip(["win_count", "win_sum", "win_mean", "win_min", "win_max"], win,
                       strict=True)),
            **dict(zip(["tum_count", "tum_sum", "tum_mean", "tum_min", "tum_max"], tum,
                       strict=True)),
            "load_per_s": win[0] / 0.05,
            "gap_ms": t - seq[-2]["ts"] if len(seq) > 1 else math.nan,
            "sum_total": 2.0 * math.fsum(v for _, v in ts_v)}
    return out


def test_node_in_harness_emits_the_features_and_its_state_pickles(tmp_path: Path) -> None:
    t = node_topology(tmp_path)
    data = readings(300)
    h = Harness(t, batch_size=16)
    h.publish("readings", data)
    h.run()
    assert h.dead_letters == []
    got = h.records("features")
    assert len(got) == len(data)
    want = expected(data)
    for rec in got:
        assert set(rec) == {"k", "ts", "v", *(f["name"] for f in avro_fields(FEATURES))}
        assert isinstance(rec["win_count"], int) and isinstance(rec["tum_count"], int)
        for name, value in want[(rec["k"], rec["ts"])].items():
            assert close(rec[name], value), (rec, name)
        assert rec.lineage is not None and len(rec.lineage.parents) == 1
    for state in h.state("feats").values():
        again = pickle.loads(pickle.dumps(state, protocol=5))
        assert isinstance(again, KernelState) and again.slots == state.slots
        assert again.arrays.keys() == state.arrays.keys()
        for f, a in state.arrays.items():
            assert again.arrays[f].dtype == np.float64
            assert np.array_equal(again.arrays[f], a, equal_nan=True)
        assert state.capacity >= len(state.slots) > 2  # grew from initial_keys=2


def test_node_resumes_from_a_pickled_state(tmp_path: Path) -> None:
    node = node_topology(tmp_path).nodes["feats"]
    events = [Event(r, stream="readings", partition=0, offset=i, timestamp=0)
              for i, r in enumerate(readings(120, seed=9))]
    state, whole = node.step(node.state(), events)
    state2, first = node.step(node.state(), events[:50])
    state2 = pickle.loads(pickle.dumps(state2))
    state2, rest = node.step(state2, events[50:])
    assert repr([r for _, r in first + rest]) == repr([r for _, r in whole])  # nan == nan
    assert all(np.array_equal(state.arrays[f], a) for f, a in state2.arrays.items())


def test_null_value_is_dead_lettered_and_the_rest_unchanged(tmp_path: Path) -> None:
    data = readings(40, seed=5)
    bad = dict(data[17], v=None)
    h = Harness(node_topology(tmp_path), batch_size=64)
    h.publish("readings", [*data[:17], bad, *data[18:]])
    h.run()
    assert [(d["node"], d["message"]) for d in h.dead_letters] == [
        ("feats", "kernel node 'feats': field 'v' is null")]
    clean = Harness(node_topology(tmp_path), batch_size=64)
    clean.publish("readings", [*data[:17], *data[18:]])
    clean.run()
    # the same records (their ids differ: the inputs after the bad one moved by one offset)
    assert sorted(repr(dict(e)) for e in h.records("features")) == \
        sorted(repr(dict(e)) for e in clean.records("features"))


def test_node_options_warm_up_with_the_types_the_step_uses(tmp_path: Path) -> None:
    node = node_topology(tmp_path).nodes["feats"]
    assert node.kind == "kernel" and node.options["on_start"]() >= 0.0
    assert node.options["fields"]["load"] == [("load_per_s", "double")]
    assert node.options["input_fields"] == ("k", "ts", "v")
    events = [Event(r, stream="readings", partition=0, offset=i, timestamp=0)
              for i, r in enumerate(readings(70))]
    node.step(node.state(), events)
    for _, k in FEATURES.values():
        assert len(k.fn.signatures) == 1, k.name  # the step never triggered a recompile


def test_kernel_node_checks_its_features() -> None:
    with pytest.raises(TypeError, match="feature 'x'"):
        kernel_node("n", "a", "b", key="k", features={"x": ewm(0.5)})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="same output field"):
        kernel_node("n", "a", "b", key="k", features={
            "w_x": ("v", ewm(0.5)), "w": ("v", Kernel("k", running_sum_fn, 1, ("x_mean",)))})
    assert avro_fields({"a_mean": ("v", tumbling(5))})[0] == {"name": "a_mean_count",
                                                              "type": "long"}
    node = kernel_node("n", "a", "b", key="k", time="ts", features={"e": ("v", ewm(0.5))},
                       select=["k", "note"])
    event = Event({"k": "x", "ts": 1, "v": 2.0}, stream="a", partition=0, offset=0, timestamp=0)
    for record, missing in (({"k": "x", "ts": 1}, "'v'"), ({"k": "x", "v": 1.0}, "'ts'"),
                            (dict(event), "'note' (in select)")):
        with pytest.raises(StepError, match=re.escape(f"no field {missing}")):
            node.step(node.state(), [Event(record, stream="a", partition=0, offset=0,
                                           timestamp=0)])


def test_import_compiles_nothing_and_an_unwritable_cache_falls_back(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code = ("import warnings, json\n"
            "with warnings.catch_warnings(record=True) as w:\n"
            "    warnings.simplefilter('always')\n"
            "    import doa.kernels as k\n"
            "compiled = sum(len(getattr(k.library, n + '_fn').signatures) for n in k.LIBRARY)\n"
            "seconds = k.warm_up([k.since_previous()])\n"
            "print(json.dumps([compiled, seconds, [str(x.message) for x in w]]))\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=str(blocker / "cache"),
               NUMBA_CACHE_LOCATOR_CLASSES="UserProvidedCacheLocator")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=120, check=True)
    compiled, seconds, warned = json.loads(proc.stdout)
    assert compiled == 0 and seconds >= 0
    assert len(warned) == 5 and all("NUMBA_CACHE_DIR" in m for m in warned)


def test_example_schema_fits_a_sensor_features_node() -> None:
    features = {"temp": ("value", ewm(0.05)), "minute": ("value", sliding(60_000, 128)),
                "load": (None, rate(60_000, 128)), "gap": (None, since_previous())}
    t = Topology("sf", schemas=REPO / "schemas")
    src = t.stream("readings", schema="sensors.reading", key="sensor_id", partitions=2)
    dst = t.stream("features", schema="sensors.features", key="sensor_id", partitions=2)
    t.add_node(kernel_node("sensor_features", src, dst, key="sensor_id", time="ts",
                           features=features, select=["sensor_id", "ts", "value"]))
    declared = [f["name"] for f in t.codec("features").schema.parsed["fields"]]
    assert declared == ["sensor_id", "ts", "value", *(f["name"] for f in avro_fields(features))]
    rows = [{"sensor_id": f"s{i % 3}", "ts": 1_700_000_000_000 + 400 * i, "value": 20.0 + i % 5,
             "location": {"lat": 52.0, "lon": 4.3}} for i in range(200)]
    h = doa.testing.run(t, {"readings": rows})
    got = h.records("features")
    assert len(got) == 200 and h.dead_letters == []
    last = max((r for r in got if r["sensor_id"] == "s0"), key=lambda r: r["ts"])
    assert last["minute_count"] == 50 and last["gap_ms"] == 1200.0  # 60 s / (3 x 400 ms)
