"""Runtime benchmark on the embedded broker, with a plain aiokafka loop measured in the same run.

    python bench/bench_runtime.py [--records 50000]

Workloads (seeded, no network beyond loopback):
- ``counting``: every input yields one output (tests/topologies/counting.py);
- ``sensors``: the example topology, ~0.6% of inputs yield an alert.
For each: records/s and process CPU µs per record of the doa node, and of a hand-written
aiokafka loop doing the same work with none of doa's guarantees (no validation, lineage,
dead letters or snapshots). Then: the per-record cost of lineage (ids + packed header), p50/p99
end-to-end latency at ~1k records/s, time from starting ``doa run`` to its first output, and
recovery time after ``kill -9`` (restart to first new output). Prints a table and writes
bench/results/runtime.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import timeit
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastavro import schemaless_reader, schemaless_writer  # noqa: E402

from doa.client import Publisher, Subscriber  # noqa: E402
from doa.engines import EngineSettings  # noqa: E402
from doa.engines.launch import prepare, run_nodes  # noqa: E402
from doa.events import Event, Lineage, output_id, pack_lineage  # noqa: E402
from doa.local.embedded import EmbeddedBroker  # noqa: E402
from doa.topology.loader import load, load_topology  # noqa: E402

COUNTING = str(ROOT / "tests" / "topologies" / "counting.py")
SENSORS = str(ROOT / "topologies" / "sensors.py")


def publish(topology: Any, address: str, stream: str, records: list[Any]) -> None:
    with Publisher(stream, broker=address, topology=topology, name="bench") as pub:
        for r in records:
            if isinstance(r, bytes):
                pub.send_raw(r)
            else:
                pub.send(r)


def doa_node(topology: Any, address: str, n: int) -> dict[str, float]:
    cpu0 = time.process_time()

    def done(stats: dict[str, Any]) -> bool:
        return bool(sum(s.records_in for s in stats.values()) >= n)

    report = asyncio.run(run_nodes(topology, address, list(topology.nodes), seconds=300,
                                   signals=False, until=done,
                                   settings=EngineSettings(snapshot_every_ms=5000)))
    cpu = time.process_time() - cpu0
    st = next(iter(report.stats.values()))
    wall = (st.last_batch_at or 0) - (st.first_batch_at or 0)
    return {"records_per_s": n / wall if wall > 0 else float("nan"),
            "cpu_us_per_record": cpu / n * 1e6, "outputs": st.records_out}


async def _plain_loop(address: str, topology: Any, stream: str, out_stream: str, n: int,
                      step: Any) -> dict[str, float]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    reader = topology.codec(stream).schema.parsed
    writer = topology.codec(out_stream).schema
    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=5, acks="all")
    consumer = AIOKafkaConsumer(stream, bootstrap_servers=address, group_id=f"plain-{stream}",
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=3000, heartbeat_interval_ms=1000,
                                fetch_max_wait_ms=10)
    await producer.start()
    await consumer.start()
    cpu0 = time.process_time()
    seen = 0
    first = last = 0.0
    state: dict[str, Any] = {}
    outputs = 0
    header = b"\xc3\x01" + writer.fingerprint
    try:
        while seen < n:
            data = await consumer.getmany(timeout_ms=100, max_records=500)
            futures = []
            for messages in data.values():
                for m in messages:
                    seen += 1
                    try:
                        buf = io.BytesIO(m.value)
                        buf.seek(10)
                        rec = schemaless_reader(buf, reader, None)
                    except Exception:
                        continue
                    out = step(state, rec)
                    if out is not None:
                        b = io.BytesIO()
                        b.write(header)
                        schemaless_writer(b, writer.parsed, out)
                        futures.append(await producer.send(out_stream, b.getvalue(),
                                                           key=m.key, partition=m.partition))
            if data:
                if not first:
                    first = time.monotonic()
                last = time.monotonic()
                outputs += len(futures)
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()
    cpu = time.process_time() - cpu0
    return {"records_per_s": n / (last - first), "cpu_us_per_record": cpu / n * 1e6,
            "outputs": outputs}


def count_step(state: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    c, t = state.get(r["key"], (0, 0))
    c, t = c + 1, t + r["n"]
    state[r["key"]] = (c, t)
    return {"key": r["key"], "n": r["n"], "count": c, "total": t}


def spike_step(state: dict[str, Any], r: dict[str, Any]) -> dict[str, Any] | None:
    n, mean, m2 = state.get(r["sensor_id"], (0.0, 0.0, 0.0))
    std = (m2 / n) ** 0.5 if n > 1 else 0.0
    z = (r["value"] - mean) / std if std > 0 else 0.0
    out = None
    if n >= 10 and abs(z) > 3.0:
        out = {"sensor_id": r["sensor_id"], "ts": r["ts"], "value": r["value"], "mean": mean,
               "std": std, "zscore": z, "count": int(n) + 1, "location": r["location"]}
    n += 1
    d = r["value"] - mean
    mean += d / n
    m2 += d * (r["value"] - mean)
    state[r["sensor_id"]] = (n, mean, m2)
    return out


def throughput(n: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    counting = load_topology(COUNTING)
    module, sensors = load(SENSORS)
    cases = [
        ("counting", counting, "events", "counts", count_step,
         [{"key": f"k{i % 100}", "n": i, "payload": "x" * 40} for i in range(n)]),
        ("sensors", sensors, "readings", "alerts", spike_step,
         [r for _, r in module.demo_source(n, 7)]),
    ]
    for name, topology, stream, out_stream, step, records in cases:
        for engine in ("plain aiokafka loop", "doa"):
            with EmbeddedBroker() as b:
                prepare(topology, b.address)
                publish(topology, b.address, stream, records)
                if engine == "doa":
                    r = doa_node(topology, b.address, len(records))
                else:
                    r = asyncio.run(_plain_loop(b.address, topology, stream, out_stream,
                                                len(records), step))
            results[f"{name} / {engine}"] = r
            print(f"  {name:9s} {engine:20s} {r['records_per_s']:>10,.0f} rec/s "
                  f"{r['cpu_us_per_record']:7.1f} µs CPU/rec  outputs {r['outputs']}", flush=True)
    return results


def lineage_cost() -> dict[str, float]:
    parent = Event({}, stream="events", partition=1, offset=12345, timestamp=0)
    fp = b"\x01" * 8

    def with_lineage() -> bytes:
        oid = output_id("count", parent, 0)
        return pack_lineage(Lineage(oid, "count", fp, (parent.id,)))

    n = 200_000
    t = min(timeit.repeat(with_lineage, number=n, repeat=5)) / n * 1e6
    return {"id_and_header_us_per_record": t}


def latency(rate: int = 1000, seconds: float = 8.0) -> dict[str, float]:
    topology = load_topology(COUNTING)
    lat: list[float] = []
    with EmbeddedBroker() as b:
        prepare(topology, b.address)
        stop = asyncio.Event()

        def consume() -> None:
            with Subscriber(["counts"], broker=b.address, topology=topology,
                            from_beginning=True, idle_timeout_s=seconds + 10) as sub:
                for e in sub:
                    lat.append(time.time() * 1e6 - e["n"])
                    if len(lat) >= rate * seconds * 0.95:
                        return

        def produce() -> None:
            time.sleep(5)  # the node joins its group first
            with Publisher("events", broker=b.address, topology=topology, linger_ms=0) as pub:
                t0 = time.monotonic()
                for i in range(int(rate * seconds)):
                    while time.monotonic() < t0 + i / rate:
                        time.sleep(0.0002)
                    pub.send({"key": f"k{i % 10}", "n": int(time.time() * 1e6)})
                    if i % 50 == 0:
                        pub._producer.flush()

        threads = [threading.Thread(target=consume), threading.Thread(target=produce)]
        for t in threads:
            t.start()
        loop_thread = threading.Thread(target=lambda: asyncio.run(run_nodes(
            topology, b.address, ["count"], seconds=seconds + 12, signals=False, stop=stop)))
        loop_thread.start()
        for t in threads:
            t.join()
        loop_thread.join()
    lat.sort()
    ms = [x / 1000 for x in lat]
    return {"records": len(ms), "p50_ms": statistics.median(ms),
            "p99_ms": ms[int(len(ms) * 0.99) - 1]}


def start_and_recovery() -> dict[str, Any]:
    topology = load_topology(COUNTING)
    out: dict[str, Any] = {}
    with EmbeddedBroker() as b:
        prepare(topology, b.address)
        publish(topology, b.address, "events",
                [{"key": f"k{i % 10}", "n": i} for i in range(200_000)])
        env = {**os.environ, "DOA_MAX_RECORDS": "50"}
        cmd = [sys.executable, "-m", "doa.cli.app", "run", COUNTING, "--broker", b.address, "-q"]
        sub = Subscriber(["counts"], broker=b.address, topology=topology, from_beginning=True,
                         idle_timeout_s=60)
        it = iter(sub)
        t0 = time.monotonic()
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        next(it)
        out["start_to_first_output_s"] = time.monotonic() - t0
        time.sleep(2)
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        for seen, _ in enumerate(it):  # drain what the killed worker wrote
            if seen > 10 and sub._consumer.poll(timeout_ms=300) == {}:
                break
        t0 = time.monotonic()
        worker = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        next(it)
        out["recovery_after_kill9_s"] = time.monotonic() - t0
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        sub.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=50_000)
    args = parser.parse_args()
    print(f"throughput ({args.records} records; one node; embedded broker):", flush=True)
    results: dict[str, Any] = {"throughput": throughput(args.records)}
    results["lineage"] = lineage_cost()
    print(f"lineage id + header: {results['lineage']['id_and_header_us_per_record']:.2f} µs/rec")
    results["latency_1k_per_s"] = latency()
    print("latency at 1k rec/s: p50 {p50_ms:.1f} ms, p99 {p99_ms:.1f} ms "
          "({records} records)".format(**results["latency_1k_per_s"]))
    results["lifecycle"] = start_and_recovery()
    print("start to first output {start_to_first_output_s:.2f} s, recovery after kill -9 "
          "{recovery_after_kill9_s:.2f} s".format(**results["lifecycle"]))
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "runtime.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {out / 'runtime.json'}")


if __name__ == "__main__":
    main()
