"""Feature kernels: jitted against their own pure-Python ``py_func``, measured in one run.

    python bench/bench_kernels.py [--events 32768] [--keys 16] [--rounds 5] [--seed 4]

For batches of 1, 64 and 512 events (seeded: ``--keys`` keys, ~100 ms between events, so a
60 s window holds ~40 events of a key) it times, in µs per event:

- each library kernel, jitted and as its ``.py_func`` (the same code run by CPython on the
  same NumPy arrays; output arrays preallocated, so only the kernel is timed);
- a hand-written per-event Python EWM on a dict of lists (the idiomatic baseline, no NumPy);
- a whole :func:`doa.kernels.kernel_node` step with all five kernels (gathering the batch's
  fields, calling the kernels, building the output records), jitted and with ``py_func``.

Then the JIT warm-up in fresh processes: ``import doa.kernels``, and :func:`warm_up` of the
five kernels with numba's on-disk cache empty (compile and write) and warm (load), each in a
fresh ``NUMBA_CACHE_DIR``. Rounds are interleaved; the table shows the minimum over rounds.
Prints a table and writes ``bench/results/kernels.json``. Performance is never asserted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numba  # noqa: E402

from doa.events import Event  # noqa: E402
from doa.kernels import (  # noqa: E402
    Kernel,
    ewm,
    kernel_node,
    rate,
    since_previous,
    sliding,
    tumbling,
    warm_up,
)

BATCHES = (1, 64, 512)
WINDOW = 60_000


def library() -> dict[str, Kernel]:
    return {"ewm": ewm(0.1), "tumbling": tumbling(WINDOW), "sliding": sliding(WINDOW, 64),
            "rate": rate(WINDOW, 64), "since_previous": since_previous()}


def data(n: int, keys: int, seed: int) -> tuple[Any, Any, Any]:
    rnd = np.random.default_rng(seed)
    slots = rnd.integers(0, keys, n).astype(np.int64)
    times = (1_700_000_000_000 + np.cumsum(rnd.integers(0, 200, n))).astype(np.int64)
    return slots, times, rnd.normal(20.0, 2.0, n)


def time_kernel(fn: Callable[..., None], k: Kernel, arrays: tuple[Any, Any, Any], batch: int,
                keys: int) -> float:
    """µs per event of ``fn`` over ``arrays`` cut in batches of ``batch``."""
    slots, times, values = arrays
    n = len(slots) - len(slots) % batch
    cuts = [(a, a + batch) for a in range(0, n, batch)]
    outs = [np.empty((batch, len(k.outputs))) for _ in cuts]
    state, params = k.new_state(keys), k.param_array()
    start = time.perf_counter()
    for (a, b), out in zip(cuts, outs, strict=True):
        fn(slots[a:b], times[a:b], values[a:b], state, params, out)
    return (time.perf_counter() - start) / n * 1e6


def time_python_ewm(arrays: tuple[Any, Any, Any], alpha: float = 0.1) -> float:
    """µs per event of an idiomatic per-event Python EWM (dict of lists, plain floats)."""
    slots, _, values = (a.tolist() for a in arrays)
    state: dict[int, list[float]] = {}
    start = time.perf_counter()
    for s, x in zip(slots, values, strict=True):
        st = state.get(s)
        if st is None:
            state[s] = [x, x * x]
            continue
        m0, q0 = st
        v0 = q0 - m0 * m0
        _z = (x - m0) / v0**0.5 if v0 > 1e-14 * q0 else 0.0
        st[0] = alpha * x + (1 - alpha) * m0
        st[1] = alpha * (x * x) + (1 - alpha) * q0
    return (time.perf_counter() - start) / len(slots) * 1e6


def time_node(python: bool, arrays: tuple[Any, Any, Any], batch: int) -> float:
    feats = {name: ("value", dataclasses.replace(k, fn=k.py_func) if python else k)
             for name, k in library().items()}
    node = kernel_node("bench", "in", "out", key="sensor_id", time="ts", features=feats)
    slots, times, values = (a.tolist() for a in arrays)
    events = [Event({"sensor_id": f"s{s}", "ts": t, "value": v}, stream="in", partition=0,
                    offset=i, timestamp=0) for i, (s, t, v) in enumerate(zip(slots, times, values,
                                                                           strict=True))]
    n = len(events) - len(events) % batch
    batches = [events[a:a + batch] for a in range(0, n, batch)]
    state = node.state()
    start = time.perf_counter()
    for b in batches:
        state, _ = node.step(state, b)
    return (time.perf_counter() - start) / n * 1e6


WARM_CODE = """
import json, time
t0 = time.perf_counter()
import doa.kernels as k
t1 = time.perf_counter()
each = {name: k.warm_up([getattr(k, name)(*args)]) for name, args in (
    ("ewm", (0.1,)), ("tumbling", (60000,)), ("sliding", (60000, 64)),
    ("rate", (60000, 64)), ("since_previous", ()))}
print(json.dumps({"import_s": t1 - t0, "warm_up_s": sum(each.values()), "each_s": each}))
"""


def warm_up_runs(rounds: int) -> dict[str, Any]:
    """Fresh processes: warm_up on an empty cache, then on the cache the first run wrote."""
    cold: list[dict[str, Any]] = []
    warm: list[dict[str, Any]] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            for runs in (cold, warm):
                proc = subprocess.run([sys.executable, "-c", WARM_CODE], env=env, cwd=ROOT,
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout))

    def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
        return {"import_s": statistics.median(r["import_s"] for r in runs),
                "warm_up_s": statistics.median(r["warm_up_s"] for r in runs),
                "each_s": {n: statistics.median(r["each_s"][n] for r in runs)
                           for n in runs[0]["each_s"]}}

    return {"cold_cache": summary(cold), "warm_cache": summary(warm), "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=32_768)
    ap.add_argument("--keys", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warm-up-rounds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=4)
    args = ap.parse_args()
    arrays = data(args.events, args.keys, args.seed)
    py_arrays = tuple(a[: max(args.events // 8, 512)] for a in arrays)  # py_func is slow
    kernels = library()
    warm_up(kernels.values())
    timings: dict[str, list[float]] = {}
    for _ in range(args.rounds):  # interleaved rounds; the minimum of each case is kept
        for name, k in kernels.items():
            for b in BATCHES:
                timings.setdefault(f"{name}|{b}|jit", []).append(
                    time_kernel(k.fn, k, arrays, b, args.keys))
                timings.setdefault(f"{name}|{b}|py", []).append(
                    time_kernel(k.py_func, k, py_arrays, b, args.keys))
        timings.setdefault("python ewm (dict, per event)|-|py", []).append(
            time_python_ewm(arrays))
        for b in BATCHES:
            timings.setdefault(f"node step, 5 kernels|{b}|jit", []).append(
                time_node(False, arrays, b))
            timings.setdefault(f"node step, 5 kernels|{b}|py", []).append(
                time_node(True, py_arrays, b))
    best = {case: min(v) for case, v in timings.items()}
    rows = []
    for name in [*kernels, "node step, 5 kernels"]:
        for b in BATCHES:
            jit, py = best[f"{name}|{b}|jit"], best[f"{name}|{b}|py"]
            rows.append({"case": name, "batch": b, "jit_us": jit, "py_func_us": py,
                         "speedup": py / jit})
    baseline = best["python ewm (dict, per event)|-|py"]
    warm = warm_up_runs(args.warm_up_rounds)
    print(f"{'case':<22}{'batch':>6}{'jit µs/ev':>11}{'py_func µs/ev':>15}{'speedup':>9}")
    for r in rows:
        print(f"{r['case']:<22}{r['batch']:>6}{r['jit_us']:>11.3f}{r['py_func_us']:>15.3f}"
              f"{r['speedup']:>8.1f}x")
    print(f"idiomatic Python EWM (dict of lists, per event): {baseline:.3f} µs/event")
    for label, key in (("empty cache (compile)", "cold_cache"),
                       ("warm cache (load)", "warm_cache")):
        w = warm[key]
        each = ", ".join(f"{n} {s:.2f}" for n, s in w["each_s"].items())
        print(f"JIT warm-up, {label}: {w['warm_up_s']:.2f} s for 5 kernels ({each}); "
              f"import doa.kernels {w['import_s']:.2f} s")
    out = ROOT / "bench" / "results" / "kernels.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "python": platform.python_version(), "platform": platform.platform(),
        "numba": numba.__version__, "numpy": np.__version__, "cpus": os.cpu_count(),
        "events": args.events, "keys": args.keys, "rounds": args.rounds, "seed": args.seed,
        "window_ms": WINDOW, "rows": rows, "python_ewm_dict_us": baseline,
        "warm_up": warm}, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
