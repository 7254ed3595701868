# mypy: disable-error-code="no-untyped-call"
"""Drift-detector node benchmark, against bare River measured in the same run.

    python bench/bench_detector.py [--records 20000] [--batch 500] [--repeat 5]

For each detector: µs per event of the doa detector node, run by ``doa.runtime.runner.NodeRunner``
on encoded records in batches of ``--batch`` (decode, step, drift-event encoding and lineage,
the per-batch state checkpoint), and of a loop calling the bare River detector's
``update(x)`` and reading ``drift_detected`` on the same values; in between, the node's step
alone on already decoded events (what the node adds to River). A no-op node on the same
records gives the runtime's own share (decode + checkpoint). Best of ``--repeat`` runs, each
from a fresh state. KSWIN (a KS test per value, ~0.2 ms) runs on a tenth of the records.
Prints a table and writes bench/results/detector.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from river import drift  # noqa: E402

from doa.detector import detector_node  # noqa: E402
from doa.events import Event  # noqa: E402
from doa.node import Node  # noqa: E402
from doa.runtime.runner import NodeRunner, RawRecord  # noqa: E402
from doa.testing import Harness  # noqa: E402
from doa.topology.topology import Topology  # noqa: E402

OBS = {"type": "record", "name": "Obs", "namespace": "bench", "fields": [
    {"name": "key", "type": "string"},
    {"name": "x", "type": "double"},
    {"name": "err", "type": "boolean"},
]}

# label -> (fresh detector, signal field, per-key?, share of --records)
CASES: dict[str, tuple[Callable[[], Any], str, bool, float]] = {
    "ADWIN": (lambda: drift.ADWIN(), "x", False, 1.0),
    "PageHinkley": (lambda: drift.PageHinkley(), "x", False, 1.0),
    "KSWIN": (lambda: drift.KSWIN(seed=42), "x", False, 0.1),
    "DDM": (lambda: drift.binary.DDM(), "err", False, 1.0),
    "EDDM": (lambda: drift.binary.EDDM(), "err", False, 1.0),
    "ADWIN per key (100 keys)": (lambda: drift.ADWIN(), "x", True, 1.0),
}


def records(n: int, seed: int = 7) -> list[dict[str, Any]]:
    """Mean and error rate shifting every 2000 records, 100 keys round-robin."""
    rng = random.Random(seed)
    return [{"key": f"k{i % 100}", "x": rng.gauss((0.0, 1.0, -0.5, 2.0)[i // 2000 % 4], 1.0),
             "err": rng.random() < (0.1, 0.3, 0.1, 0.5)[i // 2000 % 4]} for i in range(n)]


def topology(schemas: Path) -> Topology:
    t = Topology("bench", schemas=schemas)
    t.stream("obs", schema="bench.Obs", key="key")
    t.stream("drifts", schema="doa.DriftEvent", key="node", shared=True)
    return t


def encoded(t: Topology, recs: list[dict[str, Any]]) -> list[RawRecord]:
    h = Harness(t)
    h.publish("obs", recs, partition=0)
    return h.logs["obs"][0]


def time_node(t: Topology, node: Node, raws: list[RawRecord], batch: int,
              repeat: int) -> tuple[float, int]:
    runner = NodeRunner(t, node, clock=lambda: 0)
    best, outputs = float("inf"), 0
    for _ in range(repeat):
        state, outputs = node.state(), 0
        t0 = time.perf_counter()
        for start in range(0, len(raws), batch):
            result = runner.process(state, raws[start:start + batch])
            state = result.state
            outputs += result.records_out
        best = min(best, time.perf_counter() - t0)
        assert result.dead_letters == 0
    return best / len(raws) * 1e6, outputs


def time_step(t: Topology, node: Node, raws: list[RawRecord], batch: int,
              repeat: int) -> float:
    """The step alone, on already decoded events: what the node adds to River."""
    codec = t.codec("obs")
    events = [Event(codec.decode(r.value or b""), stream=r.stream, partition=r.partition,
                    offset=r.offset, timestamp=r.timestamp) for r in raws]
    best = float("inf")
    for _ in range(repeat):
        state = node.state()
        t0 = time.perf_counter()
        for start in range(0, len(events), batch):
            state, _ = node.step(state, events[start:start + batch])
        best = min(best, time.perf_counter() - t0)
    return best / len(raws) * 1e6


def time_bare(make: Callable[[], Any], values: list[Any], keys: list[str] | None,
              repeat: int) -> tuple[float, int]:
    best, fired = float("inf"), 0
    for _ in range(repeat):
        fired = 0
        t0 = time.perf_counter()
        if keys is None:
            det = make()
            for x in values:
                det.update(x)
                if det.drift_detected:
                    fired += 1
        else:
            dets: dict[str, Any] = {}
            for k, x in zip(keys, values, strict=True):
                d = dets.get(k)
                if d is None:
                    d = dets[k] = make()
                d.update(x)
                if d.drift_detected:
                    fired += 1
        best = min(best, time.perf_counter() - t0)
    return best / len(values) * 1e6, fired


def noop(state: Any, batch: list[Any]) -> tuple[Any, list[Any]]:
    return state, []


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "obs.avsc").write_text(json.dumps(OBS))
        t = topology(Path(tmp))
        all_recs = records(args.records)
        t.add_node(Node("noop", ("obs",), ("drifts",), noop, lambda: None))
        raws_all = encoded(t, all_recs)
        noop_us, _ = time_node(t, t.nodes["noop"], raws_all, args.batch, args.repeat)
        print(f"{args.records} records, batches of {args.batch}, best of {args.repeat}; "
              f"no-op node (decode + checkpoint): {noop_us:.2f} µs/event\n")
        head = (f"{'detector':26s} {'events':>7s} {'River µs/ev':>12s} {'step µs/ev':>11s} "
                f"{'doa node µs/ev':>15s} {'overhead':>9s} {'ratio':>6s} {'drifts':>7s}")
        print(head)
        print("-" * len(head))
        for label, (make, signal, per_key, share) in CASES.items():
            n = max(1000, int(args.records * share))
            recs, raws = all_recs[:n], raws_all[:n]
            name = f"watch{len(t.nodes)}"
            node = t.add_node(detector_node(name, reads="obs", writes="drifts", signal=signal,
                                            detector=make(), key="key" if per_key else None))
            values = [r[signal] for r in recs]
            keys = [r["key"] for r in recs] if per_key else None
            bare_us, fired = time_bare(make, values, keys, args.repeat)
            step_us = time_step(t, node, raws, args.batch, args.repeat)
            node_us, drifts = time_node(t, node, raws, args.batch, args.repeat)
            assert drifts == fired, (label, drifts, fired)
            rows[label] = {"events": n, "river_us_per_event": bare_us,
                           "step_us_per_event": step_us,
                           "doa_node_us_per_event": node_us,
                           "overhead_us_per_event": node_us - bare_us,
                           "ratio": node_us / bare_us, "drift_events": drifts}
            print(f"{label:26s} {n:7d} {bare_us:12.2f} {step_us:11.2f} {node_us:15.2f} "
                  f"{node_us - bare_us:9.2f} {node_us / bare_us:6.1f} {drifts:7d}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    results = {"records": args.records, "batch": args.batch, "repeat": args.repeat,
               "python": platform.python_version(), "noop_node_us_per_event": noop_us,
               "detectors": rows}
    (out / "detector.json").write_text(json.dumps(results, indent=2))
    print(f"\nwrote {out / 'detector.json'}")


if __name__ == "__main__":
    main()
