"""A missing value (NaN, ±inf: valid Avro doubles) never poisons a key's kernel state.

The reference is pandas, which nobody here wrote: its window functions skip NaN observations
and take ±inf as NaN (but for ``count``, which counts it: a pandas quirk, since its ``sum``
and ``mean`` of the same window leave it out; doa's count leaves it out too). ``ewm`` equals
``Series.ewm(alpha, adjust=False, ignore_na=True)``, ``sliding``
``Series.rolling("<w>ms", min_periods=0)`` and ``tumbling``
``groupby(t // w).expanding(min_periods=0)``, NaNs and infinities sprinkled in; a missing
value leaves the state as if its event had not come; and in a topology, one NaN reading leaves
the features and predictions of everything else as they were without it, with no dead letter.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import linear_model, metrics

from doa.kernels import (
    Kernel,
    avro_fields,
    ewm,
    kernel_node,
    rate,
    since_previous,
    sliding,
    tumbling,
)
from doa.learner.spec import Inputs, Outputs
from doa.testing import Harness
from doa.topology.topology import Topology

EXAMPLES = settings(max_examples=60, deadline=None)
MISSING = (math.nan, math.inf, -math.inf)


@st.composite
def events_with_holes(draw: Any, ordered: bool = True, max_n: int = 60) -> tuple[Any, ...]:
    """(slots, times_ms, values, missing) of a few keys; about a third of values NaN or ±inf."""
    n = draw(st.integers(1, max_n))
    slots = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    deltas = draw(st.lists(st.integers(0 if ordered else -40, 40), min_size=n, max_size=n))
    values = draw(st.lists(st.one_of(st.floats(-1e3, 1e3, allow_nan=False),
                                     st.integers(-5, 5).map(float), st.sampled_from(MISSING)),
                           min_size=n, max_size=n))
    times = draw(st.sampled_from([0, 1_700_000_000_000])) + np.cumsum(deltas)
    vals = np.array(values, dtype=np.float64)
    return (np.array(slots, dtype=np.int64), times.astype(np.int64), vals,
            ~np.isfinite(vals))


def close(a: Any, b: Any) -> bool:
    return bool(np.allclose(a, b, rtol=1e-9, atol=1e-6, equal_nan=True))


def keys(slots: Any) -> list[Any]:
    return [np.flatnonzero(slots == s) for s in np.unique(slots)]


@EXAMPLES
@given(st.floats(0.01, 1.0), events_with_holes(ordered=False))
def test_ewm_skips_missing_values_as_pandas_ewm_ignore_na(alpha: float, events: Any) -> None:
    slots, times, values, missing = events
    out = ewm(alpha).run(slots, times, values, ewm(alpha).new_state(4))
    for rows in keys(slots):
        w = pd.Series(values[rows]).ewm(alpha=alpha, adjust=False, ignore_na=True)
        assert close(out[rows, 0], w.mean().to_numpy())
        assert close(out[rows, 1], w.var(bias=True).to_numpy())
    assert np.all(out[missing, 2] == 0.0) and np.isfinite(out[:, 2]).all()


@EXAMPLES
@given(st.integers(1, 60), events_with_holes())
def test_sliding_skips_missing_values_as_pandas_rolling(width: int, events: Any) -> None:
    slots, times, values, _ = events
    out = sliding(width, capacity=64).run(slots, times, values, sliding(width, 64).new_state(4))
    for rows in keys(slots):
        s = pd.Series(values[rows], index=pd.to_datetime(times[rows], unit="ms"))
        r = s.rolling(f"{width}ms", min_periods=0)
        count = s.replace([np.inf, -np.inf], np.nan).rolling(f"{width}ms").count()
        want = np.column_stack([count, r.sum(), r.mean(), r.min(), r.max()])
        assert close(out[rows], want)


@EXAMPLES
@given(st.integers(1, 60), events_with_holes())
def test_tumbling_skips_missing_values_as_pandas_expanding(width: int, events: Any) -> None:
    slots, times, values, _ = events
    out = tumbling(width).run(slots, times, values, tumbling(width).new_state(4))
    for rows in keys(slots):
        s = pd.Series(values[rows])
        g = s.groupby(times[rows] // width).expanding(min_periods=0)
        count = s.replace([np.inf, -np.inf], np.nan).groupby(times[rows] // width).expanding()
        got = [count.count(), g.sum(), g.mean(), g.min(), g.max()]
        want = np.column_stack([c.reset_index(level=0, drop=True).sort_index() for c in got])
        assert close(out[rows], want)


VALUED = st.one_of(st.floats(0.01, 1.0).map(ewm), st.integers(1, 60).map(tumbling),
                   st.tuples(st.integers(1, 60), st.integers(1, 8)).map(lambda a: sliding(*a)))


@EXAMPLES
@given(VALUED, st.booleans().flatmap(lambda o: events_with_holes(ordered=o)))
def test_a_missing_value_leaves_the_state_as_if_its_event_had_not_come(
        kernel: Kernel, events: Any) -> None:
    """Late events included; the jitted kernel equals its py_func with missing values too."""
    slots, times, values, missing = events
    state, py_state, without = (kernel.new_state(4) for _ in range(3))
    out = kernel.run(slots, times, values, state)
    assert np.array_equal(out, kernel.run(slots, times, values, py_state, python=True),
                          equal_nan=True)
    kept = ~missing
    clean = kernel.run(slots[kept], times[kept], values[kept], without)
    assert np.array_equal(state, without) and np.array_equal(state, py_state)
    assert np.array_equal(out[kept], clean, equal_nan=True)
    assert np.isfinite(state).all()


@EXAMPLES
@given(st.integers(1, 60), st.integers(1, 8), events_with_holes(ordered=False))
def test_kernels_that_ignore_values_count_an_event_with_a_missing_one(
        width: int, cap: int, events: Any) -> None:
    slots, times, values, _ = events
    for kernel in (rate(width, cap), since_previous()):
        zero = kernel.run(slots, times, np.zeros_like(values), kernel.new_state(4))
        assert np.array_equal(kernel.run(slots, times, values, kernel.new_state(4)), zero,
                              equal_nan=True)


def test_a_key_with_no_value_yet_says_so_and_its_first_value_starts_it() -> None:
    nan = math.nan
    assert close(ewm(0.5).run([0, 0, 0], [0, 1, 2], [nan, 4.0, -math.inf]),
                 [[nan, nan, 0.0], [4.0, 0.0, 0.0], [4.0, 0.0, 0.0]])
    assert close(tumbling(10).run([0, 0, 0], [0, 5, 12], [2.0, 3.0, nan]),
                 [[1, 2.0, 2.0, 2.0, 2.0], [2, 5.0, 2.5, 2.0, 3.0], [0, 0.0, nan, nan, nan]])
    assert close(sliding(10).run([0, 0, 0], [0, 5, 12], [math.inf, 3.0, nan]),
                 [[0, 0.0, nan, nan, nan], [1, 3.0, 3.0, 3.0, 3.0], [1, 3.0, 3.0, 3.0, 3.0]])


# -- in a topology: readings -> kernel -> features -> compiled learner ------------------------
FEATURES = {"temp": ("temperature", ewm(0.1)), "vib": ("vibration", sliding(1_000, 64)),
            "load": (None, rate(1_000))}
FEATURE_FIELDS = [f["name"] for f in avro_fields(FEATURES)]


def iot(tmp_path: Path) -> Topology:
    def record(name: str, fields: list[Any]) -> None:
        (tmp_path / f"{name}.avsc").write_text(json.dumps(
            {"type": "record", "name": name, "namespace": "t", "fields": fields}))

    ident = [{"name": "id", "type": "long"}, {"name": "device", "type": "string"}]
    record("Reading", [*ident, {"name": "ts", "type": "long"},
                       {"name": "temperature", "type": "double"},
                       {"name": "vibration", "type": "double"}])
    record("Features", [*ident, {"name": "ts", "type": "long"}, *avro_fields(FEATURES)])
    record("Label", [*ident, {"name": "label", "type": "double"}])
    t = Topology("iot", schemas=tmp_path)
    readings = t.stream("readings", schema="t.Reading", key="device")
    features = t.stream("features", schema="t.Features", key="device")
    labels = t.stream("labels", schema="t.Label", key="device")
    predictions = t.stream("predictions", schema="doa.Prediction", key="key")
    t.add_node(kernel_node("featurize", readings, features, key="device", time="ts",
                           features=FEATURES, select=["id", "device", "ts"]))
    t.learner("model", model=linear_model.LinearRegression(), metric=metrics.MAE(),
              reads=Inputs(features, labels, join="id", label="label", key="device",
                           feature_fields=FEATURE_FIELDS),
              writes=Outputs(predictions), compiled=True)
    return t


def run(tmp_path: Path, readings: list[dict[str, Any]]) -> Harness:
    h = Harness(iot(tmp_path), batch_size=32)
    h.publish("readings", readings, timestamps=[r["ts"] for r in readings])
    h.publish("labels", [{"id": r["id"], "device": r["device"], "label": r["vibration"]}
                         for r in readings], timestamps=[r["ts"] + 50 for r in readings])
    h.run()
    return h


@pytest.mark.parametrize("bad", [math.nan, math.inf], ids=["nan", "inf"])
def test_one_bad_reading_leaves_later_features_as_without_it_and_no_dead_letter(
        tmp_path: Path, bad: float) -> None:
    """Before: the device's EW state became NaN for good and every later features record of
    it was a dead letter at the compiled learner (a tenth of the traffic in the walk)."""
    rnd = np.random.default_rng(7)
    readings = [{"id": i, "device": f"dev-{i % 5}", "ts": 10 * i,
                 "temperature": float(rnd.normal(60, 2)), "vibration": float(rnd.normal(1, .1))}
                for i in range(400)]
    poisoned = [dict(r, temperature=bad) if r["id"] == 101 else r for r in readings]
    h = run(tmp_path, poisoned)
    assert h.dead_letters == []
    got = {f["id"]: f for f in h.records("features")}
    without = {f["id"]: f for f in run(tmp_path, [r for r in readings if r["id"] != 101]
                                          ).records("features")}
    original = {f["id"]: f for f in run(tmp_path, readings).records("features")}
    temp = [k for k in FEATURE_FIELDS if k.startswith("temp")]
    for i, f in got.items():  # temperature: as without the reading; the rest: as with it
        if i != 101:
            assert {k: f[k] for k in temp} == {k: without[i][k] for k in temp}
        assert {k: f[k] for k in FEATURE_FIELDS if k not in temp} == \
            {k: original[i][k] for k in FEATURE_FIELDS if k not in temp}
    before = without[96]  # dev-1's reading before the bad one: its temperature so far
    assert (got[101]["temp_mean"], got[101]["temp_var"], got[101]["temp_zscore"]) == \
        (before["temp_mean"], before["temp_var"], 0.0)
    assert len(h.records("predictions")) == len(readings)


def test_a_nan_feature_s_dead_letter_names_the_input_it_came_from(tmp_path: Path) -> None:
    """A device whose first reading is NaN has no temperature yet: that one record's
    temp_mean is NaN. Before, the letter blamed the compiled model and advised dropping the
    feature; now it names the features record, where its value came from and the command
    that names the reading (a step gets no lineage headers from the runtime)."""
    readings = [{"id": i, "device": "dev-0", "ts": 10 * i, "temperature": 60.0 + i,
                 "vibration": 1.0} for i in range(5)]
    readings[0]["temperature"] = math.nan
    h = run(tmp_path, readings)
    [letter] = h.dead_letters
    assert letter["message"] == (
        "learner 'model': feature 'temp_mean' is nan in features:0:0: fix the value at its "
        "source; this record is a dead letter (a compiled model takes every feature)\n"
        "where it came from: its writer sent it so (a NaN or infinite value in a "
        "node's input, or a kernel's output for a key with no value yet; `doa lineage "
        "features:0:0` shows the input); compiled=False would leave it out of this record's "
        "prediction")
    [features] = [f for f in h.records("features") if f.offset == 0]
    assert features.lineage is not None  # what `doa lineage features:0:0` reads
    assert [str(c) for c in features.lineage.coordinates] == ["readings:0:0"]
    assert len(h.records("predictions")) == 4
