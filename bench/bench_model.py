"""Scoring throughput of a model node: one vectorized call per batch against a per-record loop
and against the bare model call on the same arrays, measured in one run.

Run it as a script (performance is never asserted in tests)::

    python bench/bench_model.py [--batch 256] [--rounds 21]

On River's Phishing dataset (seeded, cached, no network) a scikit-learn pipeline
(``StandardScaler | LogisticRegression``) and its ONNX export (skl2onnx, float32) score a batch
of ``--batch`` records; per record it times:

- ``bare predict_proba``: the model alone on the ready 2-D array (the floor);
- ``model node step``: ``topology.model``'s step on the batch of events (build the array,
  one model call, build the ``doa.Prediction`` dicts);
- ``per-record loop``: the same step shape with one ``predict_proba`` call per record on a
  one-row array (what a hand-written custom node does).

Rounds are interleaved (bench_codec.measure); the table gives min and median µs/record and
records/s at the median. Results go to ``bench/results/model.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_codec import measure  # type: ignore[import-not-found]
from river import datasets
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from doa.events import Event
from doa.model.node import model_node

FEATURES = ["empty_server_form_handler", "popup_window", "https", "request_from_other_domain",
            "anchor_from_other_domain", "is_popular", "long_url", "age_of_domain", "ip_in_url"]


def workload(batch: int) -> tuple[list[Event], np.ndarray, Any]:
    rows = [({k: float(x[k]) for k in FEATURES}, int(y)) for x, y in datasets.Phishing()]
    X = np.array([[x[k] for k in FEATURES] for x, _ in rows])
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, [y for _, y in rows])
    events = [Event({"id": i, **rows[i % len(rows)][0]}, stream="pages", partition=0,
                    offset=i, timestamp=i) for i in range(batch)]
    return events, X[np.arange(batch) % len(rows)], model


def per_record_step(model: Any) -> Callable[[dict[str, Any], list[Any]], Any]:
    """A hand-written node: the model node's records, one predict_proba call per record."""
    classes = [str(c) for c in model.classes_]

    def step(state: dict[str, Any], batch: list[Any]) -> Any:
        out = []
        for e in batch:
            values = [float(e[f]) for f in FEATURES]
            proba = model.predict_proba(np.array([values]))[0]
            out.append((e, {"join": str(e["id"]), "key": None, "model": "phish",
                            "model_version": 1, "prediction": int(model.classes_[proba.argmax()]),
                            "probabilities": dict(zip(classes, proba.tolist(), strict=True)),
                            "score": None, "features": dict(zip(FEATURES, values, strict=True)),
                            "categories": {}, "timestamp": e.timestamp}))
        return state, out

    return step


def cases(events: list[Event], X: np.ndarray, model: Any
          ) -> dict[str, tuple[str, Callable[[], object]]]:
    from skl2onnx import to_onnx

    onnx = to_onnx(model, X[:1].astype(np.float32)).SerializeToString()
    import onnxruntime

    session = onnxruntime.InferenceSession(onnx, providers=["CPUExecutionProvider"])
    X32 = X.astype(np.float32)
    name = session.get_inputs()[0].name
    nodes = {fmt: model_node("phish", reads="pages", writes="scores", model=m, features=FEATURES,
                             join="id")
             for fmt, m in (("sklearn", model), ("onnx", session))}
    for node in nodes.values():
        node.spec.start()
    loop = per_record_step(model)
    return {
        "sklearn: bare predict_proba": ("sklearn", lambda: model.predict_proba(X)),
        "sklearn: model node step": ("sklearn", lambda: nodes["sklearn"].step(
            nodes["sklearn"].state(), events)),
        "sklearn: per-record loop": ("sklearn", lambda: loop({}, events)),
        "onnx: bare session.run": ("onnx", lambda: session.run(None, {name: X32})),
        "onnx: model node step": ("onnx", lambda: nodes["onnx"].step(nodes["onnx"].state(),
                                                                     events)),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "model.json")
    args = parser.parse_args(argv)
    events, X, model = workload(args.batch)
    batch = cases(events, X, model)
    times = measure(batch, len(events), args.rounds)
    results: dict[str, dict[str, float]] = {}
    for case in batch:
        median = statistics.median(times[case])
        results[case] = {"min_us": min(times[case]) * 1e6, "median_us": median * 1e6,
                         "records_per_s": 1 / median}
    print(f"{'case':34} {'min µs/rec':>11} {'median µs/rec':>14} {'records/s':>11}")
    for case, r in results.items():
        print(f"{case:34} {r['min_us']:11.2f} {r['median_us']:14.2f} {r['records_per_s']:11.0f}")
    node, loop = results["sklearn: model node step"], results["sklearn: per-record loop"]
    print(f"model node vs per-record loop: {loop['median_us'] / node['median_us']:.1f}x faster")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "batch": args.batch, "rounds": args.rounds, "python": sys.version.split()[0],
        "machine": platform.machine(), "results": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
