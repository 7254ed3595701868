"""Lineage lookup time on the embedded broker with 100k records per stream.

    python bench/bench_lineage.py [--records 100000] [--lookups 20]

The fraud topology (topologies/fraud.py, seed 7) runs in the in-memory harness (the same
NodeRunner as on Kafka, so the same headers), and its logs are copied record by record, with
their partitions, timestamps, keys and headers, into a fresh embedded broker: every stream
the scorer writes per transaction holds ``--records`` records. Then, for ``--lookups``
predictions spread over the stream: the time of the ancestry alone (prediction -> features ->
transaction, one fetch per parent) and of the full trace (with the label, outcome, metric and
model versions, searched in bounded windows), each from a fresh reader. Also the cost of the
version-2 header on the runtime's hot path (``NodeRunner._encode_all``, µs per output).
Prints a table and writes bench/results/lineage.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doa.engines.launch import prepare  # noqa: E402
from doa.events import Event  # noqa: E402
from doa.lineage.log import Log  # noqa: E402
from doa.lineage.walk import trace  # noqa: E402
from doa.local.embedded import EmbeddedBroker  # noqa: E402
from doa.runtime.runner import NodeRunner  # noqa: E402
from doa.testing import Harness  # noqa: E402
from doa.topology.loader import load_topology  # noqa: E402


def build_logs(n: int) -> Harness:
    import importlib

    # imported by name: a demo topology is checked as an example, not as bench code
    fraud: Any = importlib.import_module("topologies.fraud")
    t = load_topology(str(ROOT / "topologies" / "fraud.py"))
    h = Harness(t, batch_size=512)
    for stream, record, ts in fraud.demo_source(n):
        h.publish(stream, [record], timestamps=[ts])
    h.run()
    return h


def copy_to(h: Harness, address: str) -> dict[str, int]:
    from kafka import KafkaProducer

    prepare(h.topology, address)
    producer = KafkaProducer(bootstrap_servers=address, acks="all", linger_ms=20,
                             max_in_flight_requests_per_connection=1,
                             batch_size=256 * 1024, max_request_size=4 * 1024 * 1024)
    sizes: dict[str, int] = {}
    for stream, parts in h.logs.items():
        for records in parts:
            for r in records:
                producer.send(stream, value=r.value, key=r.key, partition=r.partition,
                              timestamp_ms=r.timestamp, headers=list(r.headers))
            sizes[stream] = sizes.get(stream, 0) + len(records)
    producer.flush()
    producer.close()
    return sizes


def lookups(address: str, h: Harness, count: int) -> dict[str, Any]:
    end = len(h.logs["predictions"][0])
    offsets = [int(end * (i + 0.5) / count) for i in range(count)]
    up: list[float] = []
    full: list[float] = []
    fetches: list[int] = []
    for offset in offsets:
        for forward, into in ((False, up), (True, full)):
            with Log(address, h.topology) as log:
                began = time.perf_counter()
                rec = log.get("predictions", 0, offset)
                assert rec is not None
                tr = trace(log, rec, forward=forward)
                into.append(time.perf_counter() - began)
                if forward:
                    fetches.append(log.fetches)
                    assert any(s.relation == "label" and s.record for s in tr.descendants)
                else:
                    assert tr.ancestry[0].steps[0].record is not None  # reached the transaction
    return {"ancestry_ms": _stats(up), "full_trace_ms": _stats(full),
            "full_trace_fetches_median": statistics.median(fetches)}


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = sorted(s * 1000 for s in seconds)
    return {"median": round(statistics.median(ms), 2), "max": round(ms[-1], 2),
            "min": round(ms[0], 2)}


def hot_path(rounds: int = 30) -> float:
    """µs per output of NodeRunner._encode_all (encode, partition, id, v2 header)."""
    t = load_topology(str(ROOT / "tests" / "topologies" / "counting.py"))
    runner = NodeRunner(t, t.nodes["count"], clock=lambda: 0)
    events = [Event({"key": f"k{i % 50}", "n": i, "payload": "x"}, stream="events",
                    partition=i % 4, offset=i, timestamp=1_700_000_000_000 + i)
              for i in range(512)]
    outs = [(e, {"key": e["key"], "n": e["n"], "count": 1, "total": 2}) for e in events]
    best = []
    for _ in range(rounds):
        began = time.perf_counter()
        for _ in range(10):
            runner._encode_all(outs, events)
        best.append((time.perf_counter() - began) / (10 * len(outs)) * 1e6)
    return round(min(best), 3)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=20)
    args = parser.parse_args()
    began = time.perf_counter()
    h = build_logs(args.records)
    built = time.perf_counter() - began
    with EmbeddedBroker() as broker:
        sizes = copy_to(h, broker.address)
        result = lookups(broker.address, h, args.lookups)
    result.update({"records": args.records, "stream_sizes": sizes,
                   "harness_run_s": round(built, 1), "encode_all_us_per_output": hot_path()})
    print(f"{'streams':<28}{', '.join(f'{k} {v}' for k, v in sizes.items() if v)}")
    for key in ("ancestry_ms", "full_trace_ms"):
        s = result[key]
        print(f"{key:<28}median {s['median']:8.2f}   max {s['max']:8.2f}   min {s['min']:8.2f}")
    print(f"{'full trace fetches (median)':<28}{result['full_trace_fetches_median']}")
    print(f"{'encode_all µs/output':<28}{result['encode_all_us_per_output']}")
    out = ROOT / "bench" / "results" / "lineage.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
