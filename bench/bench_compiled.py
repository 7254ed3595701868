"""Compiled River models against River itself: per-event cost and equality, in one run.

    python bench/bench_compiled.py [--events 20000] [--rounds 3] [--warm-up-rounds 3]

Prequential workload (each event: predict on the current state, then learn), per model:

- ``scaler|logreg``: StandardScaler | LogisticRegression() on synth.Agrawal(seed=42);
- ``scaler|linreg``: StandardScaler | LinearRegression() on synth.Friedman(seed=42);
- ``minmax|hst``: MinMaxScaler | HalfSpaceTrees(seed=42) (10 trees, height 8) on Friedman.

Timed in µs per event (one PREDICT and one LEARN), minimum over interleaved rounds:

- ``river``: the River object, ``predict_proba_one`` / ``predict_one`` / ``score_one`` then
  ``learn_one`` on dicts;
- ``compiled dicts``: the CompiledModel's dict methods (one kernel call per operation);
- ``kernel b=N``: ``run_ops`` on batches of N events (2N operations), arrays prebuilt;
- ``end to end b=N``: the same plus building the batch's arrays from the dicts
  (``CompiledModel.rows``), as a learner node would.

Equality: the max relative error of the compiled predictions against River's (all batch
sizes), and whether they are bit-identical. JIT warm-up: ``import doa.compiled`` and
``warm_up()`` in fresh processes with numba's cache empty (compile and write) and then full
(load), each round in a fresh ``NUMBA_CACHE_DIR``. Prints a table and writes
``bench/results/compiled.json``. Performance is never asserted.
"""

from __future__ import annotations

import argparse
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
import river  # noqa: E402
from river import anomaly, datasets, linear_model, preprocessing  # noqa: E402

from doa import compiled  # noqa: E402
from doa.compiled import LEARN, PREDICT  # noqa: E402

BATCHES = (1, 64, 512)
Rows = list[tuple[dict[str, float], float]]


def agrawal(n: int) -> Rows:
    return [({k: float(v) for k, v in x.items()}, float(bool(y)))
            for x, y in datasets.synth.Agrawal(seed=42).take(n)]


def friedman(n: int) -> Rows:
    return [({f"x{k}": float(v) for k, v in x.items()}, float(y))
            for x, y in datasets.synth.Friedman(seed=42).take(n)]


MODELS: dict[str, tuple[Callable[[], Any], Callable[[int], Rows]]] = {
    "scaler|logreg": (lambda: preprocessing.StandardScaler()
                      | linear_model.LogisticRegression(), agrawal),
    "scaler|linreg": (lambda: preprocessing.StandardScaler()
                      | linear_model.LinearRegression(), friedman),
    "minmax|hst": (lambda: preprocessing.MinMaxScaler()
                   | anomaly.HalfSpaceTrees(seed=42), friedman),
}


def river_run(model: Any, kind: str, data: Rows) -> tuple[float, list[float]]:
    preds: list[float] = []
    start = time.perf_counter()
    for x, y in data:
        if kind == "classifier":
            preds.append(model.predict_proba_one(x)[True])
            model.learn_one(x, y == 1.0)
        elif kind == "regressor":
            preds.append(model.predict_one(x))
            model.learn_one(x, y)
        else:
            preds.append(model.score_one(x))
            model.learn_one(x)
    return (time.perf_counter() - start) / len(data) * 1e6, preds


def dict_run(cm: compiled.CompiledModel, data: Rows) -> tuple[float, list[float]]:
    preds: list[float] = []
    start = time.perf_counter()
    for x, y in data:
        if cm.kind == "classifier":
            preds.append(cm.predict_proba_one(x)[True])
            cm.learn_one(x, y == 1.0)
        elif cm.kind == "regressor":
            preds.append(cm.predict_one(x))
            cm.learn_one(x, y)
        else:
            preds.append(cm.score_one(x))
            cm.learn_one(x)
    return (time.perf_counter() - start) / len(data) * 1e6, preds


def batch_run(cm: compiled.CompiledModel, data: Rows, batch: int, from_dicts: bool
              ) -> tuple[float, list[float]]:
    """µs per event of run_ops over batches of ``batch`` events (P, L, P, L, ...)."""
    n = len(data) - len(data) % batch
    kinds = np.tile(np.array([PREDICT, LEARN], dtype=np.int8), batch)
    dicts = [[x for x, _ in data[a:a + batch] for _ in (0, 1)] for a in range(0, n, batch)]
    ys = [np.repeat([y for _, y in data[a:a + batch]], 2) for a in range(0, n, batch)]
    prebuilt = [cm.rows(d) for d in dicts]
    outs = []
    start = time.perf_counter()
    for i in range(len(dicts)):
        X = cm.rows(dicts[i]) if from_dicts else prebuilt[i]
        outs.append(cm.run_ops(kinds, X, ys[i]))
    elapsed = time.perf_counter() - start
    return elapsed / n * 1e6, np.concatenate(outs)[::2, 0].tolist()


def rel_error(got: list[float], want: list[float]) -> float:
    g, w = np.asarray(got, dtype=float), np.asarray(want[:len(got)], dtype=float)
    scale = np.maximum(np.abs(w), np.finfo(float).tiny)
    return float(np.max(np.where(g == w, 0.0, np.abs(g - w) / scale)))


WARM_CODE = """
import json, time
t0 = time.perf_counter()
import doa.compiled as c
t1 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "warm_up_s": c.warm_up()}))
"""


def warm_up_runs(rounds: int) -> dict[str, Any]:
    """Fresh processes: warm_up on an empty cache, then on the cache the first run wrote."""
    cold: list[dict[str, float]] = []
    warm: list[dict[str, float]] = []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as cache:
            env = dict(os.environ, NUMBA_CACHE_DIR=cache)
            for runs in (cold, warm):
                proc = subprocess.run([sys.executable, "-c", WARM_CODE], env=env, cwd=ROOT,
                                      capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout))

    def summary(runs: list[dict[str, float]]) -> dict[str, float]:
        return {k: statistics.median(r[k] for r in runs) for k in ("import_s", "warm_up_s")}

    return {"cold_cache": summary(cold), "warm_cache": summary(warm), "rounds": rounds}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warm-up-rounds", type=int, default=3)
    args = ap.parse_args()
    compiled.warm_up()
    data = {name: load(args.events) for name, (_, load) in MODELS.items()}
    times: dict[str, list[float]] = {}
    errors: dict[str, float] = {}
    exact: dict[str, bool] = {}
    for _ in range(args.rounds):
        for name, (make, _) in MODELS.items():
            features = list(data[name][0][0])
            kind = compiled.compile_model(make(), features).kind
            us, want = river_run(make(), kind, data[name])
            times.setdefault(f"{name}|river", []).append(us)
            runs = {"compiled dicts": dict_run(compiled.compile_model(make(), features),
                                               data[name])}
            for b in BATCHES:
                for label, from_dicts in (("kernel", False), ("end to end", True)):
                    cm = compiled.compile_model(make(), features)
                    runs[f"{label} b={b}"] = batch_run(cm, data[name], b, from_dicts)
            for case, (us, got) in runs.items():
                times.setdefault(f"{name}|{case}", []).append(us)
                errors[name] = max(errors.get(name, 0.0), rel_error(got, want))
                exact[name] = exact.get(name, True) and got == want[:len(got)]
    best = {k: min(v) for k, v in times.items()}
    rows = []
    for name in MODELS:
        river_us = best[f"{name}|river"]
        for case in ["river", "compiled dicts", *(f"{label} b={b}" for b in BATCHES
                                                  for label in ("kernel", "end to end"))]:
            us = best[f"{name}|{case}"]
            rows.append({"model": name, "case": case, "us_per_event": us,
                         "speedup_vs_river": river_us / us})
    warm = warm_up_runs(args.warm_up_rounds)
    print(f"{'model':<15}{'case':<18}{'µs/event':>10}{'vs River':>10}")
    for r in rows:
        print(f"{r['model']:<15}{r['case']:<18}{r['us_per_event']:>10.3f}"
              f"{r['speedup_vs_river']:>9.1f}x")
    for name in MODELS:
        print(f"{name}: max relative error vs River {errors[name]:.1e}, "
              f"bit-identical: {exact[name]}")
    for label, key in (("empty cache (compile)", "cold_cache"), ("full cache (load)",
                                                                  "warm_cache")):
        w = warm[key]
        print(f"JIT warm-up, {label}: {w['warm_up_s']:.2f} s; import doa.compiled "
              f"{w['import_s']:.2f} s")
    out = ROOT / "bench" / "results" / "compiled.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "python": platform.python_version(), "platform": platform.platform(),
        "numba": numba.__version__, "numpy": np.__version__, "river": vars(river)["__version__"],
        "cpus": os.cpu_count(), "events": args.events, "rounds": args.rounds, "rows": rows,
        "max_relative_error": errors, "bit_identical": exact, "warm_up": warm},
        indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
