"""The same node on both engines, in one run: records/s and CPU µs per record.

    python bench/bench_engines.py [--records 50000]

Workloads (seeded, no network beyond loopback; a fresh embedded broker per measurement):
- ``counting``: every input yields one output (tests/topologies/counting.py);
- ``sensors``: the example topology, ~0.6% of inputs yield an alert, 0.1% are malformed.
For each, the node runs on the kafka engine (aiokafka batch loop) and on the faust engine
(doa.engines.faust: an agent in a faust-streaming app) over the same published input.
records/s is measured from the node's first to its last batch; CPU µs per record is the
process's CPU time (every thread: Faust's consumer runs in one of its own) over the same span,
so neither includes start-up and group join. Prints a table and writes
bench/results/engines.json.
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

from doa.client import Publisher  # noqa: E402
from doa.engines import EngineSettings, NodeStats  # noqa: E402
from doa.engines.launch import prepare, run_nodes  # noqa: E402
from doa.local.embedded import EmbeddedBroker  # noqa: E402
from doa.topology.loader import load, load_topology  # noqa: E402

COUNTING = str(ROOT / "tests" / "topologies" / "counting.py")
SENSORS = str(ROOT / "topologies" / "sensors.py")
ENGINES = ("kafka", "faust")


def publish(topology: Any, address: str, stream: str, records: list[Any]) -> None:
    with Publisher(stream, broker=address, topology=topology, name="bench") as pub:
        for r in records:
            if isinstance(r, bytes):
                pub.send_raw(r, key=b"sensor-00")
            else:
                pub.send(r)


def measure(topology: Any, address: str, n: int, engine: str) -> dict[str, float]:
    """Run every node of ``topology`` on ``engine`` until it has read ``n`` records."""
    marks: list[tuple[float, int]] = []  # (process CPU s, records in) at the first batch

    def done(stats: dict[str, NodeStats]) -> bool:
        records = sum(s.records_in for s in stats.values())
        if records and not marks:
            marks.append((time.process_time(), records))
        return records >= n

    report = asyncio.run(run_nodes(topology, address, list(topology.nodes), seconds=600,
                                   signals=False, until=done, engine=engine,
                                   settings=EngineSettings(snapshot_every_ms=5000)))
    cpu_end = time.process_time()
    st = next(iter(report.stats.values()))
    cpu_first, records_first = marks[0]
    wall = (st.last_batch_at or 0.0) - (st.first_batch_at or 0.0)
    return {"records": st.records_in, "outputs": st.records_out,
            "dead_letters": st.dead_letters, "batches": st.batches,
            "records_per_s": st.records_in / wall if wall > 0 else float("nan"),
            "cpu_us_per_record": (cpu_end - cpu_first) / max(1, n - records_first) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    n = parser.parse_args().records
    counting = load_topology(COUNTING)
    module, sensors = load(SENSORS)
    workloads = [
        ("counting", counting, "events",
         [{"key": f"k{i % 100}", "n": i, "payload": "x" * 40} for i in range(n)]),
        ("sensors", sensors, "readings", [r for _, r in module.demo_source(n, 7)]),
    ]
    print(f"one node, {n} records, embedded broker; kafka = aiokafka batch loop (default), "
          "faust = doa.engines.faust", flush=True)
    print(f"  {'workload':9s} {'engine':6s} {'records/s':>10s} {'CPU µs/rec':>11s} "
          f"{'outputs':>8s} {'batches':>8s}", flush=True)
    results: dict[str, Any] = {}
    for name, topology, stream, records in workloads:
        for engine in ENGINES:
            with EmbeddedBroker() as b:
                prepare(topology, b.address)
                publish(topology, b.address, stream, records)
                r = measure(topology, b.address, len(records), engine)
            results[f"{name} / {engine}"] = r
            print(f"  {name:9s} {engine:6s} {r['records_per_s']:>10,.0f} "
                  f"{r['cpu_us_per_record']:>11.1f} {r['outputs']:>8d} {r['batches']:>8d}",
                  flush=True)
        k, f = results[f"{name} / kafka"], results[f"{name} / faust"]
        results[f"{name} / kafka vs faust"] = {
            "throughput_ratio": k["records_per_s"] / f["records_per_s"],
            "cpu_ratio": f["cpu_us_per_record"] / k["cpu_us_per_record"]}
        print(f"  {name:9s} kafka engine: {k['records_per_s'] / f['records_per_s']:.1f}x the "
              f"records/s at 1/{f['cpu_us_per_record'] / k['cpu_us_per_record']:.1f} of the CPU "
              "per record", flush=True)
    import aiokafka
    import faust

    results["versions"] = {"faust-streaming": faust.__version__,
                           "aiokafka": aiokafka.__version__, "python": sys.version.split()[0]}
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "engines.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out / 'engines.json'}")


if __name__ == "__main__":
    main()
