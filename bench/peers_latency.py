"""End-to-end latency of the peers variants at a paced rate (``python -m bench peers --latency``).

    python -m bench peers --latency [--rate 1000] [--seconds 10] [--variants a,b,...]
                                    [--untuned] [--kafka]

One embedded broker (tansu), or with ``--kafka`` a local Apache Kafka. Per variant, in turn:
fresh input topics (``NAME.txns``, ``NAME.labels``) and a fresh consumer group, so runs never
mix; the variant's process (:mod:`bench.peers_run` with ``--records 0``) starts on them empty.
Records of the throughput mode's workload (a transaction and its label, the label 1 ms later, as
the preload writes them) are sent one every 50 ms until outputs come back, also for a record
sent after the first output came back (the process has joined its group, is polling, and any
backlog a slow start held up is through), then at ``--rate`` records/s paced by the wall clock:
a warm-up second, then ``--seconds`` measured. Each record's Kafka timestamp is its send time
(ms); every variant keeps its input's timestamp on its output (doa's outputs carry the input's
event time; the hand-written loops and Quix Streams pass it through), so a consumer of the
variant's final output stream records ``now - output timestamp`` for each. Reported per variant:
p50, p99 and max in ms over the measured records' outputs (the warm-up's are left out), and
outputs received / records sent. Writes bench/results/peers-latency.json and peers-latency.md.

``direct`` is the harness's floor: no variant, the bench's consumer reads ``NAME.txns``
itself (the bench's producer queue, the broker and the bench's fetch). Every variant runs
tuned for latency as a user would tune it: producer linger ``LINGER_MS``, consumer fetch wait
``FETCH_MAX_WAIT_MS`` (``--linger-ms``/``--fetch-max-wait-ms`` of :mod:`bench.peers_run`; for
doa the same as ``DOA_LINGER_MS``/``DOA_FETCH_MAX_WAIT_MS``); ``--untuned`` keeps each
variant's throughput settings (linger 5 ms, fetch wait 10 ms; librdkafka's 500 ms fetch wait
for Quix). The embedded broker holds a fetch past the arrival of data (a lone record waits
~40 ms at p50 behind a 200 ms fetch wait, ~3 ms behind 5-10 ms: ``python -m
bench.latency_floor``), so the fetch wait bounds every hop's wait. A record's timestamp is its
send time truncated to the ms, so latencies read up to 1 ms high.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import peers_workload as w

ROOT = Path(__file__).resolve().parents[1]
KIND = {"aiokafka-pass": "loop", "confluent-pass": "loop", "aiokafka-learner": "loop",
        "confluent-learner": "loop", "quix-learner": "loop", "quix-pair": "pair",
        "doa-pass": "passthrough",
        "doa-custom": "custom", "doa-custom-compiled": "custom", "doa-pair": "pair",
        "doa-pair-compiled": "pair", "doa-pair-chained": "pair", "doa-pair-unchained": "pair",
        "direct": "direct"}  # the variants the latency mode runs (not faust)
READY_EVERY_S = 0.05  # one record per 50 ms until the first output
READY_TIMEOUT_S = 180.0  # bounds a variant that never answers (start-up, group join)
WARM_S = 1.0  # paced, not measured
DRAIN_TIMEOUT_S = 30.0  # bounds waiting for the measured records' outputs
LINGER_MS = 0  # every variant's producer linger, tuned for latency (unless --untuned)
FETCH_MAX_WAIT_MS = 5  # every variant's (and the bench consumer's) fetch wait


def percentile(ordered: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of the sorted ``ordered``.

    >>> percentile([1.0, 2.0, 3.0, 4.0], 50), percentile([1.0, 2.0, 3.0, 4.0], 99)
    (2.0, 4.0)
    """
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def stats(latencies: list[float], sent: int) -> dict[str, Any]:
    """p50, p99, max and mean in ms, and the counts.

    >>> stats([3.0, 1.0, 2.0], 4)["p50_ms"], stats([3.0, 1.0, 2.0], 4)["outputs"]
    (2.0, 3)
    """
    ordered = sorted(latencies)
    return {"p50_ms": percentile(ordered, 50), "p99_ms": percentile(ordered, 99),
            "max_ms": ordered[-1] if ordered else float("nan"),
            "mean_ms": sum(ordered) / len(ordered) if ordered else float("nan"),
            "outputs": len(ordered), "sent": sent}


def start(variant: str, address: str, name: str, log: Path,
          tuned: bool = True) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "bench.peers_run", variant, "--broker", address,
           "--records", "0", "--name", name, "--inputs", f"{name}."]
    if tuned:
        cmd += ["--linger-ms", str(LINGER_MS), "--fetch-max-wait-ms", str(FETCH_MAX_WAIT_MS)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as err:
        return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    """Terminate the variant's process (SIGTERM), kill it if it does not exit in 30 s."""
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Driver:
    """Sends the paced workload to ``NAME.txns``/``NAME.labels`` and times the outputs.

    The records are encoded up front and the heap is frozen (``gc.freeze``: no full
    collection walks it while measuring), so the paced loop only stamps and sends: the pacer and
    the measuring consumer share this process's event loop (measured: separate processes
    moved nothing beyond the machine's noise), and the less it does per record the less it
    delays a fetched output's time of arrival.
    """

    def __init__(self, address: str, name: str, output: str, schemas: Path, n: int) -> None:
        t = w.topology("pair", name, schemas, inputs=f"{name}.")
        self.address, self.output = address, output
        self.txns, self.labels = f"{name}.txns", f"{name}.labels"
        txn, label = t.codec(self.txns), t.codec(self.labels)
        self.records = iter([(r["account"].encode(), txn.encode(r), label.encode(
            {"id": r["id"], "account": r["account"], "label": r["label"]})) for r in w.txns(n)])
        self.received: list[tuple[int, float]] = []  # (output timestamp, latency ms)
        self.newest = 0  # the newest output timestamp
        self.producer: Any = None
        self.consumer: Any = None
        self.futures: list[Any] = []

    async def open(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        self.producer = AIOKafkaProducer(bootstrap_servers=self.address, linger_ms=0,
                                         acks="all")
        self.consumer = AIOKafkaConsumer(bootstrap_servers=self.address,
                                         fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
                                         enable_auto_commit=False,
                                         auto_offset_reset="earliest")
        await self.producer.start()
        await self.consumer.start()
        self.consumer.assign([TopicPartition(self.output, p) for p in range(w.PARTITIONS)])

    async def close(self) -> None:
        await asyncio.gather(*self.futures)
        await self.consumer.stop()
        await self.producer.stop()

    async def sink(self) -> None:
        """Record ``now - timestamp`` of every output, as soon as it is fetched."""
        while True:
            data = await self.consumer.getmany(timeout_ms=50)
            now = time.time() * 1000
            got = [(m.timestamp, now - m.timestamp) for ms in data.values() for m in ms]
            if got:
                self.received.extend(got)
                self.newest = max(self.newest, max(ts for ts, _ in got))

    async def send(self) -> int:
        """Send the next transaction and its label; the transaction's timestamp (ms): the
        wall clock as the record is handed to the producer (linger 0: it leaves at once, or
        as soon as the request in flight to the broker is answered)."""
        key, txn, label = next(self.records)
        ts = int(time.time() * 1000)
        self.futures.append(await self.producer.send(self.txns, txn, key=key, timestamp_ms=ts))
        self.futures.append(await self.producer.send(self.labels, label, key=key,
                                                     timestamp_ms=ts + 1))
        if len(self.futures) > 4096:
            done = [f for f in self.futures if f.done()]
            await asyncio.gather(*done)  # raise a failed send
            self.futures = [f for f in self.futures if not f.done()]
        return ts

    async def until_ready(self, proc: subprocess.Popen[bytes] | None) -> None:
        """Send one record per 50 ms until an output comes back for a record sent after the
        first output came back (the first may come with a backlog a slow start held up)."""
        deadline, mark = time.monotonic() + READY_TIMEOUT_S, None
        while mark is None or self.newest <= mark:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"exited with {proc.returncode} before it was ready")
            if time.monotonic() > deadline:
                raise RuntimeError(f"not ready (no output) within {READY_TIMEOUT_S:.0f} s")
            ts = await self.send()
            if mark is None and self.received:
                mark = ts - 1  # this record was sent after the first output came back
            await asyncio.sleep(READY_EVERY_S)

    async def paced(self, rate: float, seconds: float) -> tuple[int, int, int]:
        """Send at ``rate`` records/s for ``seconds`` (catching up after a late wake-up);
        the count sent and the first and last timestamps."""
        t0, sent, first, last, total = time.monotonic(), 0, 0, 0, int(seconds * rate)
        while sent < total:
            due = min(int((time.monotonic() - t0) * rate) + 1, total)
            while sent < due:
                last = await self.send()
                first = first or last
                sent += 1
            await asyncio.sleep(0.001)
        return sent, first, last

    async def run(self, proc: subprocess.Popen[bytes] | None, rate: float,
                  seconds: float) -> dict[str, Any]:
        await self.open()
        gc.collect()
        gc.freeze()  # a full collection walked the start-up heap (doa, River, the records):
        sink = asyncio.create_task(self.sink())  # a 140 ms stall of the pacer and the sink
        try:
            began = time.monotonic()
            await self.until_ready(proc)
            ready_s = time.monotonic() - began
            _, _, warm_last = await self.paced(rate, WARM_S)
            while int(time.time() * 1000) <= warm_last:  # the measured window starts after
                await asyncio.sleep(0.0005)            # the warm-up's last millisecond
            sent, first, last = await self.paced(rate, seconds)
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while len(self.measured(first, last)) < sent and time.monotonic() < deadline:
                if proc is not None and proc.poll() is not None:
                    raise RuntimeError(f"exited with {proc.returncode} while measured")
                await asyncio.sleep(0.05)
            return {**stats(self.measured(first, last), sent), "ready_s": round(ready_s, 1),
                    "load_1m": round(os.getloadavg()[0], 1),  # the machine's, for the reader
                    "p50_by_second": self.trend(first, last)}
        finally:
            sink.cancel()
            await asyncio.gather(sink, return_exceptions=True)
            await self.close()
            gc.unfreeze()

    def measured(self, first: int, last: int) -> list[float]:
        return [lat for ts, lat in self.received if first <= ts <= last]

    def trend(self, first: int, last: int) -> list[float]:
        """p50 ms of the measured outputs per second of their send time: tansu's fetch
        costs more as a partition grows (its CPU at 1k/s with a consumer at the end went
        from 0.24 to 0.55 core over 5 s; without the consumer it stayed at 0.15), so the
        latency of a run rises over its seconds."""
        seconds: dict[int, list[float]] = {}
        for ts, lat in self.received:
            if first <= ts <= last:
                seconds.setdefault((ts - first) // 1000, []).append(lat)
        return [round(percentile(sorted(v), 50), 1) for _, v in sorted(seconds.items())]


def run_variant(variant: str, address: str, rate: float, seconds: float, schemas: Path,
                tag: str, tuned: bool = True) -> dict[str, Any]:
    """One latency run of ``variant`` on topics and a group of its own (``direct``: no
    variant, the bench's consumer reads the transactions it sends)."""
    from doa.cluster.admin import TopicSpec, ensure_topics, topology_topics

    name = f"lat{tag}-{variant}"
    kind = KIND[variant]
    output = f"{name}.txns" if kind == "direct" else \
        w.output_stream("pair" if kind == "pair" else "custom", name)
    specs = topology_topics(w.topology("pair", name, schemas, inputs=f"{name}."))
    asyncio.run(ensure_topics(address, [*specs, TopicSpec(f"{name}.out", w.PARTITIONS)]))
    n = int(rate * (WARM_S + seconds)) + int(READY_TIMEOUT_S / READY_EVERY_S) + 10
    with tempfile.TemporaryDirectory(prefix="peers-latency-") as tmp:
        log = Path(tmp) / f"{variant}.err"
        proc = None if kind == "direct" else start(variant, address, name, log, tuned)
        try:
            return asyncio.run(Driver(address, name, output, schemas, n).run(proc, rate,
                                                                              seconds))
        except RuntimeError as exc:
            stop(proc)
            tail = log.read_text(errors="replace").strip().splitlines()[-3:] \
                if log.exists() else []
            raise RuntimeError(f"{exc}: {' | '.join(tail)}") from None
        finally:
            stop(proc)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One variant's result over rounds: the median round (by p99; the better of two) with
    every round's p50, p99 and load average, so that a reader sees how far the machine's
    noise moved them.

    >>> r = combine([{"p50_ms": 3.0, "p99_ms": 9.0}, {"p50_ms": 2.0, "p99_ms": 7.0},
    ...              {"p50_ms": 4.0, "p99_ms": 8.0}])
    >>> r["p99_ms"], r["p99_rounds"], r["p50_rounds"]
    (8.0, [9.0, 7.0, 8.0], [3.0, 2.0, 4.0])
    """
    median = sorted(runs, key=lambda r: r["p99_ms"])[(len(runs) - 1) // 2]
    return {**median, "p50_rounds": [r["p50_ms"] for r in runs],
            "p99_rounds": [r["p99_ms"] for r in runs],
            "load_rounds": [r.get("load_1m", float("nan")) for r in runs]}


def table(results: dict[str, dict[str, Any]], errors: dict[str, str], rate: float,
          labels: dict[str, str], tuned: bool = True) -> str:
    """The markdown table of ``results`` (and failures), in ``labels``' order."""
    rows = [f"| variant | p50 / p99 ms at {rate / 1000:g}k/s | max ms | outputs / sent "
            "| p50 / p99 per round (1-min load average) |", "|---|---:|---:|---:|---|"]
    for v in sorted({*results, *errors}, key=list(labels).index):
        if v in errors:
            rows.append(f"| {labels[v]} | failed: {errors[v][:80]} | | | |")
            continue
        r = results[v]
        rounds = ", ".join(f"{a:.0f} / {b:.0f} ({c:.1f})" for a, b, c in
                           zip(r["p50_rounds"], r["p99_rounds"], r["load_rounds"], strict=True))
        rows.append(f"| {labels[v]} | {r['p50_ms']:.0f} / {r['p99_ms']:.0f} | "
                    f"{r['max_ms']:.0f} | {r['outputs']:,} / {r['sent']:,} | {rounds} |")
    rows.append("")
    rows.append(f"Every variant tuned for latency: producer linger {LINGER_MS} ms, fetch wait "
                f"{FETCH_MAX_WAIT_MS} ms (doa: `DOA_LINGER_MS={LINGER_MS}` "
                f"`DOA_FETCH_MAX_WAIT_MS={FETCH_MAX_WAIT_MS}`)." if tuned else
                "Each variant with its throughput settings (`--untuned`): linger 5 ms, fetch "
                "wait 10 ms (Quix: librdkafka's defaults).")
    return "\n".join(rows)


def main(variants: list[str], rate: int, seconds: float, labels: dict[str, str],
         rounds: int = 1, tuned: bool = True, kafka: bool = False) -> None:
    """Run the latency mode over ``variants`` (``rounds`` times, interleaved) on the embedded
    broker, or a local Apache Kafka (``kafka``); print and write the results."""
    unknown = [v for v in variants if v not in KIND]
    if unknown:
        sys.exit(f"--latency cannot run {', '.join(unknown)} (it runs: {', '.join(KIND)})")
    from doa.local.apache_kafka import LocalKafka
    from doa.local.embedded import EmbeddedBroker

    runs: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
    errors: dict[str, str] = {}
    tag = f"{int(time.time()) % 100_000}"
    began = time.monotonic()
    with LocalKafka() if kafka else EmbeddedBroker() as broker:
        schemas = w.write_schemas(Path(tempfile.mkdtemp(prefix="peers-")))
        print(f"peers latency: {rate} records/s, {WARM_S:g} s warm-up then {seconds:g} s "
              f"measured per variant, {rounds} round(s), "
              f"{'Apache Kafka' if kafka else 'embedded broker'}, "
              + ("tuned for latency" if tuned else "untuned"), flush=True)
        for rnd in range(rounds):
            for v in variants:
                if v in errors:
                    continue
                try:
                    r = run_variant(v, broker.address, rate, seconds, schemas,
                                    f"{tag}r{rnd}", tuned)
                except (RuntimeError, OSError) as exc:
                    errors[v] = str(exc)
                    print(f"  {v:20s} FAILED {exc}", flush=True)
                    continue
                runs[v].append(r)
                print(f"  {v:20s} p50 {r['p50_ms']:6.1f} p99 {r['p99_ms']:6.1f} max "
                      f"{r['max_ms']:6.1f} ms  outputs {r['outputs']}/{r['sent']}  load "
                      f"{r['load_1m']:.1f}  p50 by second {r['p50_by_second']}", flush=True)
    results = {v: combine(rs) for v, rs in runs.items() if rs}
    md = table(results, errors, rate, labels, tuned)
    print(md)
    print(f"({time.monotonic() - began:.0f} s)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    meta = {"rate": rate, "seconds": seconds, "warm_up_s": WARM_S, "partitions": w.PARTITIONS,
            "rounds": rounds, "tuned": tuned, "linger_ms": LINGER_MS if tuned else None,
            "fetch_max_wait_ms": FETCH_MAX_WAIT_MS if tuned else None,
            "broker": "kafka" if kafka else "tansu", "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "machine": platform.platform()}
    (out / "peers-latency.json").write_text(json.dumps(
        {"meta": meta, "results": results, "runs": runs, "errors": errors}, indent=2) + "\n")
    (out / "peers-latency.md").write_text(md + "\n")
    print(f"wrote {out / 'peers-latency.json'} and {out / 'peers-latency.md'}")
