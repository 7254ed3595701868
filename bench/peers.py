"""doa against the loops a user would otherwise write, Quix Streams and Faust, in one run.

    python -m bench peers [--quick] [--records N] [--rounds R] [--variants a,b,...]
    python -m bench peers --profile VARIANT [--records N] [--sampler cprofile|py-spy]
    python -m bench peers --latency [--rate R] [--seconds S] [--rounds R] [--untuned]
                                    [--variants a,b,...]

One embedded broker (tansu); ``txns`` (4 partitions) preloaded with N seeded records (see
:mod:`bench.peers_workload`). Each round runs every variant once, in turn, each in a process
of its own reading ``txns`` from the beginning in its own consumer group
(:mod:`bench.peers_run`); rounds interleave the variants so that load from elsewhere on the
machine falls on all of them alike. Reported per variant: the median over rounds of records/s
(first fetched batch to last) and of process CPU µs per input record, and ratios against the
aiokafka getmany loop and Quix Streams on the same work. Writes bench/results/peers.json and
bench/results/peers.md. ``--latency`` measures end-to-end latency at a paced rate instead
(:mod:`bench.peers_latency`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peers_workload as w

ROOT = Path(__file__).resolve().parents[1]
LABELS = {
    "direct": "direct: the bench's producer -> its consumer, no variant (the floor)",
    "aiokafka-pass": "aiokafka passthrough (bytes in, bytes out)",
    "confluent-pass": "confluent-kafka passthrough",
    "doa-pass": "doa passthrough (a node that forwards each record)",
    "aiokafka-learner": "aiokafka getmany(256) loop, learner workload",
    "confluent-learner": "confluent-kafka consume(256) loop, learner workload",
    "quix-learner": "Quix Streams, learner workload",
    "quix-pair": "Quix Streams as users write the pair: features -> learner joining labels",
    "faust-learner": "faust agent take(256), learner workload",
    "doa-custom": "doa custom node, learner workload (River)",
    "doa-custom-compiled": "doa custom node, learner workload (compiled learner)",
    "doa-pair": "doa as users write it: kernel node -> learner node (River)",
    "doa-pair-compiled": "doa as users write it, compiled learner",
    "doa-pair-split": "doa as users deploy it: the pair's two nodes in a process each",
    "doa-pair-chained": "doa kernel node -> learner node, chained",
    "doa-pair-unchained": "doa kernel node -> learner node, unchained (`DOA_CHAIN=0`)",
}
# not in the throughput mode's default run
NOT_THROUGHPUT = {"direct", "doa-pair-chained", "doa-pair-unchained"}
LATENCY_DEFAULT = ["direct", "aiokafka-pass", "doa-pass", "aiokafka-learner", "doa-custom",
                   "doa-pair", "doa-pair-unchained"]
# (variant, baseline) ratios of records/s the report prints
RATIOS = [("doa-pass", "aiokafka-pass"), ("doa-custom", "aiokafka-learner"),
          ("doa-custom", "quix-learner"), ("doa-custom-compiled", "aiokafka-learner"),
          ("doa-custom-compiled", "quix-learner"), ("doa-pair", "quix-learner"),
          ("doa-pair-compiled", "quix-learner"), ("doa-pair", "quix-pair"),
          ("doa-pair-compiled", "quix-pair"), ("doa-pair-split", "quix-learner"),
          ("doa-pair-split", "quix-pair"), ("confluent-learner", "aiokafka-learner")]
PAIRS = {"quix-pair", "doa-pair", "doa-pair-compiled", "doa-pair-chained",
         "doa-pair-unchained", "doa-pair-split"}


def preload(address: str, n: int, schemas: Path) -> None:
    """``txns`` (and ``labels``, for the learner node) with ``n`` records each."""
    from aiokafka import AIOKafkaProducer

    from doa.cluster.admin import ensure_topics, topology_topics

    t = w.topology("pair", "preload", schemas)
    asyncio.run(ensure_topics(address, topology_topics(t)))
    txn, label = t.codec("txns"), t.codec("labels")

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=20, acks="all")
        await producer.start()
        try:
            futures = []
            for r in w.txns(n):
                key, ts = r["account"].encode(), w.BASE_MS + r["id"]
                futures.append(await producer.send("txns", txn.encode(r), key=key,
                                                   timestamp_ms=ts))
                futures.append(await producer.send(
                    "labels", label.encode({"id": r["id"], "account": r["account"],
                                            "label": r["label"]}), key=key, timestamp_ms=ts + 1))
            await asyncio.gather(*futures)
        finally:
            await producer.stop()

    asyncio.run(send())


def run_variant(variant: str, address: str, n: int, name: str, profile: bool = False,
                timeout: float = 600, code: Path = ROOT) -> tuple[dict[str, Any], str]:
    """Run ``variant`` in a process of its own, with doa and bench from ``code``."""
    cmd = [sys.executable, "-m", "bench.peers_run", variant, "--broker", address,
           "--records", str(n), "--name", name] + (["--profile"] if profile else [])
    env = {**os.environ, "PYTHONPATH": str(code)}
    done = subprocess.run(cmd, cwd=code, env=env, capture_output=True, text=True,
                          timeout=timeout)
    lines = done.stdout.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{"):
            return json.loads(line), "\n".join(lines[i + 1:])
    tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
    raise RuntimeError(f"variant {variant} failed (exit {done.returncode}): {' | '.join(tail)}")


def summarise(runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for v, rs in runs.items():
        if rs:
            out[v] = {"records_per_s": statistics.median(r["records_per_s"] for r in rs),
                      "cpu_us_per_record": statistics.median(r["cpu_us_per_record"] for r in rs),
                      "outputs": rs[-1]["outputs"], "rounds": len(rs)}
    for v, base in RATIOS:
        for variant in (v, f"{v}@before"):
            if variant in out and base in out:
                out[variant].setdefault("ratios", {})[base] = \
                    out[variant]["records_per_s"] / out[base]["records_per_s"]
    return out


def table(summary: dict[str, Any], errors: dict[str, str]) -> str:
    rows = ["| variant | records/s | node CPU µs/record | vs aiokafka loop | vs Quix | "
            "vs Quix pair |", "|---|---:|---:|---:|---:|---:|"]
    base_pass = summary.get("aiokafka-pass", {}).get("records_per_s")
    base_loop = summary.get("aiokafka-learner", {}).get("records_per_s")
    quix = summary.get("quix-learner", {}).get("records_per_s")
    quix_pair = summary.get("quix-pair", {}).get("records_per_s")
    labels = {x: LABELS[x] for x in LABELS}
    for v in summary:
        name, _, before = v.partition("@")
        if before:
            labels = {**labels, v: f"{LABELS[name]}, before"}
    for v, label in sorted(labels.items(), key=lambda kv: list(LABELS).index(
            kv[0].partition("@")[0]) - 0.5 * bool(kv[0].partition("@")[2])):
        if v in errors:
            rows.append(f"| {label} | failed: {errors[v][:80]} | | | | |")
        if v not in summary:
            continue
        r = summary[v]["records_per_s"]
        passthrough = v.partition("@")[0].endswith("-pass")
        base = base_pass if passthrough else base_loop
        vs_loop = f"{r / base:.2f}x" if base else "-"
        vs_quix = f"{r / quix:.2f}x" if quix and not passthrough else "-"
        paired = v.partition("@")[0] in PAIRS
        vs_pair = f"{r / quix_pair:.2f}x" if quix_pair and paired else "-"
        rows.append(f"| {label} | {r:,.0f} | {summary[v]['cpu_us_per_record']:.1f} | "
                    f"{vs_loop} | {vs_quix} | {vs_pair} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench peers")
    parser.add_argument("--quick", action="store_true", help="10k records, 2 rounds (< 5 min)")
    parser.add_argument("--records", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--variants", help="comma-separated subset of: " + ", ".join(LABELS))
    parser.add_argument("--compare", metavar="DIR", type=Path,
                        help="also run doa's variants with doa and bench from DIR (e.g. "
                             "`git archive BASE doa bench | tar -x -C DIR`), as VARIANT@before")
    parser.add_argument("--profile", metavar="VARIANT", choices=sorted(LABELS),
                        help="run VARIANT once under a profiler: top 25 functions")
    parser.add_argument("--sampler", choices=("cprofile", "py-spy"), default="cprofile",
                        help="--profile: cProfile (every call timed; overstates small "
                             "calls) or py-spy (sampled from outside; bench.peers_sample)")
    parser.add_argument("--latency", action="store_true",
                        help="p50/p99/max end-to-end latency at --rate records/s instead "
                             "(variants: " + ", ".join(LATENCY_DEFAULT) + " unless --variants)")
    parser.add_argument("--rate", type=int, default=1000, help="--latency: records/s")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="--latency: measured seconds per variant")
    parser.add_argument("--kafka", action="store_true",
                        help="--latency: on a local Apache Kafka instead of the embedded broker")
    parser.add_argument("--untuned", action="store_true",
                        help="--latency: each variant keeps its throughput settings (linger "
                             "5 ms, fetch wait 10 ms) instead of linger 0, fetch wait 5 ms")
    a = parser.parse_args(argv)
    if a.latency:
        from bench import peers_latency

        peers_latency.main(a.variants.split(",") if a.variants else LATENCY_DEFAULT,
                           a.rate, a.seconds, LABELS, rounds=a.rounds or 1,
                           tuned=not a.untuned, kafka=a.kafka)
        return
    n = a.records or (10_000 if a.quick or a.profile else 40_000)
    rounds = a.rounds or (2 if a.quick else 3)
    variants = a.variants.split(",") if a.variants else \
        [v for v in LABELS if v not in NOT_THROUGHPUT]
    if a.compare:
        variants = [x for v in variants for x in
                    ((f"{v}@before", v) if v.startswith("doa-") else (v,))]
    from doa.local.embedded import EmbeddedBroker

    with EmbeddedBroker() as broker:
        preload(broker.address, n, w.write_schemas(Path(tempfile.mkdtemp(prefix="peers-"))))
        if a.profile:
            if a.sampler == "py-spy":
                from bench.peers_sample import sample

                result, profile = sample(a.profile, broker.address, n, "profile", ROOT)
            else:
                result, profile = run_variant(a.profile, broker.address, n, "profile", True)
            print(json.dumps(result))
            print(profile)
            return
        runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
        errors: dict[str, str] = {}
        print(f"peers: {n} records on txns (4 partitions), embedded broker, {rounds} rounds",
              flush=True)
        began = time.monotonic()
        for rnd in range(rounds):
            for v in variants:
                if v in errors:
                    continue
                name, _, before = v.partition("@")
                try:
                    r, _ = run_variant(name, broker.address, n,
                                       f"r{rnd}-{name}" + "-before" * bool(before),
                                       code=a.compare if before else ROOT)
                except (RuntimeError, subprocess.TimeoutExpired) as exc:
                    errors[v] = str(exc)
                    print(f"  round {rnd + 1} {v:18s} FAILED {exc}", flush=True)
                    continue
                runs[v].append(r)
                print(f"  round {rnd + 1} {v:18s} {r['records_per_s']:>9,.0f} rec/s "
                      f"{r['cpu_us_per_record']:7.1f} µs CPU/rec  outputs {r['outputs']}",
                      flush=True)
    summary = summarise(runs)
    md = table(summary, errors)
    print(md)
    print(f"({time.monotonic() - began:.0f} s)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"records": n, "rounds": rounds, "partitions": w.PARTITIONS, "broker": "tansu",
            "cpus": os.cpu_count(), "python": platform.python_version(),
            "machine": platform.platform()}
    (out / "peers.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "runs": runs, "errors": errors}, indent=2) + "\n")
    (out / "peers.md").write_text(md + "\n")
    print(f"wrote {out / 'peers.json'} and {out / 'peers.md'}")
