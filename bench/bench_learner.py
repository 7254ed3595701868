"""Learner node cost against bare River on the same events, measured in the same run.

    python bench/bench_learner.py [--records 20000]

Workload: River's Phishing features (1,250 rows, cycled with fresh ids), label delay 10,
StandardScaler | LogisticRegression, Accuracy. Three ways, same events:
- bare River: simulate_qa order, predict_one / metric.update / learn_one;
- the learner step through doa.runtime.runner.NodeRunner (decode, step, encode, lineage; no broker);
- the learner node on the embedded broker (run_nodes),
  records/s and CPU µs per event
  (an event is a feature record or a label record).
Prints a table and writes bench/results/learner.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from river import datasets, linear_model, metrics, preprocessing, stream  # noqa: E402

from doa.client import Publisher  # noqa: E402
from doa.engines import EngineSettings  # noqa: E402
from doa.engines.launch import broker_for, prepare, run_nodes  # noqa: E402
from doa.events import Lineage, pack_lineage  # noqa: E402
from doa.runtime.runner import NodeRunner, RawRecord  # noqa: E402
from doa.topology.loader import load_topology  # noqa: E402

LEARNING = str(ROOT / "tests" / "topologies" / "learning.py")
DELAY = 10
BASE = 1_700_000_000_000


def rows(n: int) -> list[tuple[dict[str, float], bool]]:
    data = [({k: float(v) for k, v in x.items()}, bool(y)) for x, y in datasets.Phishing()]
    return [data[i % len(data)] for i in range(n)]


def bare_river(data: list[tuple[dict[str, float], bool]]) -> dict[str, float]:
    model = preprocessing.StandardScaler() | linear_model.LogisticRegression()
    metric = metrics.Accuracy()  # type: ignore[no-untyped-call]
    preds: dict[int, Any] = {}
    t0 = time.process_time()
    for i, x, y in stream.simulate_qa(data, moment=None, delay=DELAY,  # type: ignore[arg-type]
                                      copy=False):
        if y is None:
            preds[i] = model.predict_one(x)
        else:
            metric.update(y, preds.pop(i))
            model.learn_one(x, y)
    cpu = time.process_time() - t0
    accuracy = metric.get()  # type: ignore[no-untyped-call]
    return {"cpu_us_per_event": cpu / (2 * len(data)) * 1e6, "accuracy": accuracy}


def merged_raw(topology: Any, data: list[tuple[dict[str, float], bool]]) -> list[RawRecord]:
    fcodec, lcodec = topology.codec("features"), topology.codec("labels")
    header = (("doa", pack_lineage(Lineage(b"\1" * 16, "bench", b"\0" * 8))),)
    out = []
    for i, (x, y) in enumerate(data):
        out.append((BASE + i + DELAY, 0, RawRecord("labels", 0, i, BASE + i + DELAY, None,
                                                   lcodec.encode({"id": i, "label": y}),
                                                   header)))
        out.append((BASE + i, 1, RawRecord("features", 0, i, BASE + i, None,
                                           fcodec.encode({"id": i, **x}), header)))
    out.sort(key=lambda t: (t[0], t[1]))
    return [r for _, _, r in out]


def learning(compiled: bool) -> Any:
    """The test topology's learner, on the River path or the compiled one."""
    from doa.learner.node import learner_node

    topology = load_topology(LEARNING)
    spec = topology.nodes["model"].options["spec"]
    topology.nodes["model"] = learner_node(
        "model", features=spec.features, labels=spec.labels, predictions=spec.predictions,
        outcomes=spec.outcomes, metrics=spec.metrics, unmatched=spec.unmatched,
        model=preprocessing.StandardScaler() | linear_model.LogisticRegression(),
        metric=metrics.Accuracy(),  # type: ignore[no-untyped-call]
        join="id", label="label", metrics_every=100,
        feature_fields=list(next(iter(datasets.Phishing()))[0]),
        compiled=compiled)
    return topology


def node_in_process(data: list[tuple[dict[str, float], bool]],
                    compiled: bool = False) -> dict[str, float]:
    topology = learning(compiled)
    runner = NodeRunner(topology, topology.nodes["model"])
    runner.start()
    raws = merged_raw(topology, data)
    state = topology.nodes["model"].state()
    t0 = time.process_time()
    for i in range(0, len(raws), 500):
        state = runner.process(state, raws[i:i + 500]).state
    cpu = time.process_time() - t0
    return {"cpu_us_per_event": cpu / len(raws) * 1e6, "accuracy": state["metric"].get()}


def node_on_broker(data: list[tuple[dict[str, float], bool]],
                   compiled: bool = False) -> dict[str, float]:
    topology = learning(compiled)
    with broker_for(None) as address:
        prepare(topology, address)
        with Publisher("features", broker=address, topology=topology) as pub:
            for i, (x, _) in enumerate(data):
                pub.send({"id": i, **x}, timestamp_ms=BASE + i)
        with Publisher("labels", broker=address, topology=topology) as pub:
            for i, (_, y) in enumerate(data):
                pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + DELAY)
        cpu0 = time.process_time()
        report = asyncio.run(run_nodes(
            topology, address, ["model"], seconds=300, signals=False,
            settings=EngineSettings(snapshot_every_ms=5000),
            until=lambda s: s["model"].records_in >= 2 * len(data)))
        cpu = time.process_time() - cpu0
    st = report.stats["model"]
    wall = (st.last_batch_at or 0) - (st.first_batch_at or 0)
    return {"events_per_s": st.records_in / wall if wall else float("nan"),
            "cpu_us_per_event": cpu / st.records_in * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=20_000)
    args = parser.parse_args()
    data = rows(args.records)
    results = {"bare River": bare_river(data),
               "learner step (NodeRunner)": node_in_process(data),
               "  compiled": node_in_process(data, compiled=True),
               "learner node on the broker": node_on_broker(data),
               "  compiled ": node_on_broker(data, compiled=True)}
    base = results["bare River"]["cpu_us_per_event"]
    print(f"{args.records} feature records + {args.records} labels, delay {DELAY}")
    print(f"{'':28s} {'CPU µs/event':>13s} {'x River':>8s} {'events/s':>10s}")
    for name, r in results.items():
        rate = f"{r['events_per_s']:,.0f}" if "events_per_s" in r else "-"
        print(f"{name:28s} {r['cpu_us_per_event']:13.1f} {r['cpu_us_per_event'] / base:8.2f} "
              f"{rate:>10s}")
    assert results["bare River"]["accuracy"] == results["learner step (NodeRunner)"]["accuracy"]
    assert results["bare River"]["accuracy"] == results["  compiled"]["accuracy"]
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "learner.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
