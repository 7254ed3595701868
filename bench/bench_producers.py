"""Producing a node's outputs: doa's aiokafka path against confluent-kafka (librdkafka).

    python -m bench.bench_producers [--records 30000] [--rounds 3] [--variants a,b,...]

Would doa's engine produce faster with confluent-kafka's producer than with aiokafka? One
process, one embedded broker (tansu), the same records for every variant: ~300-byte values,
a key, a timestamp, two small headers, 4 partitions, handed over in batches of 256 (a node's
batch) and each batch awaited until the broker acknowledged every record (acks=all), as
:func:`doa.engines.delivery.deliver` does before a commit. Variants:

- ``deliver``: :func:`doa.engines.delivery.deliver` over an AIOKafkaProducer configured as the
  kafka engine configures it (linger 5 ms, acks all, 256 KiB batches, no idempotence);
- ``aio-send``: a plain aiokafka loop, ``send()`` per record, then all futures awaited;
- ``ck-flush``: confluent_kafka.Producer, ``produce()`` per record with a delivery callback
  that keeps its offset, then ``flush()`` in the loop's executor (flush sends at once,
  without lingering, and runs the callbacks in that thread);
- ``ck-poll``: the same ``produce()``, a dedicated thread calling ``poll()``; the callback of a
  batch's last acknowledgement wakes the loop (``call_soon_threadsafe``); linger 5 ms applies;
- ``ck-poll-l0``: ``ck-poll`` with linger.ms 0;
- ``ck-batch``: ``produce_batch()`` per partition (confluent-kafka >= 2.12) and ``flush()`` in
  the executor. It takes neither headers nor timestamps, so it cannot carry doa's records;
- ``ck-floor``: ``produce()`` per record without a delivery callback, then ``flush()``: no
  offsets, so not usable either; what librdkafka costs at the least from Python.

Rounds interleave the variants (a fresh producer each, started and warmed by one batch before
the span); the table gives medians. records/s is wall time over the span; CPU µs per record is
``time.process_time()`` over the span (every thread of this process: librdkafka's threads too),
the share of it the event loop's thread spent (``time.thread_time()``: what a node's loop pays)
and, apart, the broker process's CPU (from /proc). The machine may be shared and noisy: compare
variants within one run only. Prints a table and writes bench/results/producers.json.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import random
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doa.engines import NodeStats  # noqa: E402
from doa.engines.delivery import deliver  # noqa: E402
from doa.engines.kafka import OUTPUT_BATCH_BYTES  # noqa: E402
from doa.runtime.runner import OutRecord  # noqa: E402

PARTITIONS = 4
BATCH = 256
VALUE_BYTES = 300
BASE_MS = 1_767_225_600_000
LINGER_MS = 5
VARIANTS = ("deliver", "aio-send", "ck-flush", "ck-poll", "ck-poll-l0", "ck-batch", "ck-floor")
HEADERS_CARRIED = {"ck-batch": False}  # produce_batch takes neither headers nor timestamps
NO_OFFSETS = {"ck-floor"}  # no delivery callbacks: what produce() + flush() cost at least
Batch = Sequence[OutRecord]
Producing = Callable[[Batch], Awaitable[list[int]]]


def records(n: int, stream: str) -> list[OutRecord]:
    """``n`` seeded records round-robin over the partitions, two lineage-like headers each."""
    rng = random.Random(7)
    return [OutRecord(stream, i % PARTITIONS, b"acct-%05d" % (i % 5000),
                      rng.randbytes(VALUE_BYTES), BASE_MS + i,
                      (("doa.id", rng.randbytes(16)), ("doa.src", b"txns/%d/%d" % (i % 4, i))))
            for i in range(n)]


# -- aiokafka ----------------------------------------------------------------------------------
async def aiokafka_variant(name: str, address: str) -> tuple[Producing, Callable[[], Any]]:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=address, linger_ms=LINGER_MS, acks="all",
                                enable_idempotence=False, max_batch_size=OUTPUT_BATCH_BYTES,
                                client_id=f"bench-{name}")
    await producer.start()
    stats = NodeStats()

    async def by_deliver(batch: Batch) -> list[int]:
        return await deliver(producer, batch, stats, "bench")

    async def by_send(batch: Batch) -> list[int]:
        futures = [await producer.send(o.stream, o.value, key=o.key, partition=o.partition,
                                       timestamp_ms=o.timestamp, headers=list(o.headers))
                   for o in batch]
        return [m.offset for m in await asyncio.gather(*futures)]

    return (by_deliver if name == "deliver" else by_send), producer.stop


# -- confluent-kafka ---------------------------------------------------------------------------
class Acks:
    """A batch's offsets as delivery callbacks report them; ``done`` once all arrived."""

    __slots__ = ("error", "left", "offsets", "wake")

    def __init__(self, n: int, wake: Callable[[], None] | None = None) -> None:
        self.offsets, self.left, self.error = [-1] * n, n, None
        self.wake = wake

    def report(self, i: int, err: Any, msg: Any) -> None:
        if err is not None:
            self.error = err
        else:
            self.offsets[i] = msg.offset()
        self.left -= 1
        if self.left == 0 and self.wake is not None:
            self.wake()

    def result(self) -> list[int]:
        if self.error is not None or self.left:
            raise RuntimeError(f"not acknowledged: {self.left} left, error {self.error}")
        return self.offsets


def ck_config(address: str, name: str, linger_ms: int) -> dict[str, Any]:
    return {"bootstrap.servers": address, "acks": "all", "linger.ms": linger_ms,
            "enable.idempotence": False, "batch.size": OUTPUT_BATCH_BYTES,
            "client.id": f"bench-{name}"}


async def confluent_variant(name: str, address: str) -> tuple[Producing, Callable[[], Any]]:
    from confluent_kafka import Producer  # type: ignore[import-untyped]

    loop = asyncio.get_running_loop()
    producer = Producer(ck_config(address, name, 0 if name == "ck-poll-l0" else LINGER_MS))
    produce = producer.produce

    async def flushed(batch: Batch) -> list[int]:
        acks = Acks(len(batch))
        report = acks.report
        for i, o in enumerate(batch):
            produce(o.stream, o.value, o.key, partition=o.partition,
                    on_delivery=functools.partial(report, i), timestamp=o.timestamp,
                    headers=list(o.headers))
        while acks.left:  # flush returns once the queue is empty, the callbacks run
            await loop.run_in_executor(None, producer.flush, 30.0)
        return acks.result()

    async def floor(batch: Batch) -> list[int]:
        for o in batch:
            produce(o.stream, o.value, o.key, partition=o.partition, timestamp=o.timestamp,
                    headers=list(o.headers))
        if await loop.run_in_executor(None, producer.flush, 30.0):
            raise RuntimeError("not acknowledged within 30 s")
        return [-1] * len(batch)

    async def batched(batch: Batch) -> list[int]:
        acks = Acks(len(batch))
        report = acks.report
        parts: dict[int, list[dict[str, Any]]] = {}
        for i, o in enumerate(batch):
            parts.setdefault(o.partition, []).append(
                {"value": o.value, "key": o.key, "callback": functools.partial(report, i)})
        for p, messages in parts.items():
            if producer.produce_batch(batch[0].stream, messages, partition=p) != len(messages):
                raise RuntimeError(f"produce_batch refused records of partition {p}")
        while acks.left:
            await loop.run_in_executor(None, producer.flush, 30.0)
        return acks.result()

    if name in ("ck-flush", "ck-batch", "ck-floor"):
        chosen = {"ck-flush": flushed, "ck-batch": batched, "ck-floor": floor}[name]
        return chosen, lambda: producer.flush(30.0)

    running = True

    def poll() -> None:
        while running:
            producer.poll(0.1)

    thread = threading.Thread(target=poll, name=f"bench-{name}-poll", daemon=True)
    thread.start()

    async def polled(batch: Batch) -> list[int]:
        done = loop.create_future()
        def wake() -> None:
            loop.call_soon_threadsafe(done.set_result, None)

        acks = Acks(len(batch), wake)
        report = acks.report
        for i, o in enumerate(batch):
            produce(o.stream, o.value, o.key, partition=o.partition,
                    on_delivery=functools.partial(report, i), timestamp=o.timestamp,
                    headers=list(o.headers))
        await done
        return acks.result()

    def stop() -> None:
        nonlocal running
        producer.flush(30.0)
        running = False
        thread.join()

    return polled, stop


# -- measuring ---------------------------------------------------------------------------------
def broker_cpu_s(pid: int | None) -> float:
    """User + system CPU seconds of process ``pid`` (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(name: str, batch: Batch, offsets: list[int], seen: set[tuple[int, int]]) -> None:
    """Every record got an offset, none twice, increasing per partition within the batch."""
    if name in NO_OFFSETS:
        return
    last: dict[int, int] = {}
    for o, off in zip(batch, offsets, strict=True):
        if off < 0 or (o.partition, off) in seen or off <= last.get(o.partition, -1):
            raise RuntimeError(f"{name}: offset {off} of partition {o.partition} is wrong")
        seen.add((o.partition, off))
        last[o.partition] = off


async def measure(name: str, address: str, data: list[OutRecord], broker_pid: int | None
                  ) -> dict[str, float]:
    make = aiokafka_variant if name in ("deliver", "aio-send") else confluent_variant
    produce, stop = await make(name, address)
    seen: set[tuple[int, int]] = set()
    try:
        warm = data[:BATCH]
        check(name, warm, await produce(warm), seen)  # connect, fetch metadata
        batches = [data[i:i + BATCH] for i in range(BATCH, len(data), BATCH)]
        n = sum(len(b) for b in batches)
        got: list[list[int]] = []
        b0, c0, t0 = broker_cpu_s(broker_pid), time.process_time(), time.perf_counter()
        m0 = time.thread_time()
        for batch in batches:
            got.append(await produce(batch))
        m1 = time.thread_time()
        t1, c1, b1 = time.perf_counter(), time.process_time(), broker_cpu_s(broker_pid)
    finally:
        result = stop()
        if asyncio.iscoroutine(result):
            await result
    for batch, offsets in zip(batches, got, strict=True):
        check(name, batch, offsets, seen)
    return {"records": n, "seconds": t1 - t0, "records_per_s": n / (t1 - t0),
            "cpu_us_per_record": 1e6 * (c1 - c0) / n, "loop_cpu_us_per_record": 1e6 * (m1 - m0) / n,
            "broker_cpu_us_per_record": 1e6 * (b1 - b0) / n}


def summarise(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    base = None
    for v, rs in runs.items():
        if not rs:
            continue
        s: dict[str, Any] = {k: statistics.median(r[k] for r in rs)
                             for k in ("records_per_s", "cpu_us_per_record",
                                       "loop_cpu_us_per_record", "broker_cpu_us_per_record")}
        s["offsets_per_record"] = v not in NO_OFFSETS  # check() verified each record's offset
        s["headers"] = HEADERS_CARRIED.get(v, True)
        base = base or s
        s["rate_vs_deliver"] = s["records_per_s"] / base["records_per_s"]
        s["cpu_vs_deliver"] = base["cpu_us_per_record"] / s["cpu_us_per_record"]
        summary[v] = s
    return summary


def table(summary: dict[str, dict[str, Any]]) -> str:
    rows = ["| variant | records/s | CPU µs/record | loop thread µs/record | x deliver (rate) "
            "| x deliver (CPU) | broker CPU µs/record | offsets | headers |",
            "|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for v, s in summary.items():
        rows.append(f"| {v} | {s['records_per_s']:,.0f} | {s['cpu_us_per_record']:.1f} | "
                    f"{s['loop_cpu_us_per_record']:.1f} | {s['rate_vs_deliver']:.2f} | "
                    f"{s['cpu_vs_deliver']:.2f} | "
                    f"{s['broker_cpu_us_per_record']:.1f} | "
                    f"{'yes' if s['offsets_per_record'] else 'no'} | "
                    f"{'yes' if s['headers'] else 'no'} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.bench_producers", description=__doc__
                                .split("\n\n")[0])
    p.add_argument("--records", type=int, default=30000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "producers.json")
    a = p.parse_args(argv)
    variants = [v for v in a.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        p.error(f"unknown variants {sorted(unknown)}; known: {', '.join(VARIANTS)}")

    from doa.cluster.admin import TopicSpec, ensure_topics
    from doa.local.embedded import EmbeddedBroker

    runs: dict[str, list[dict[str, float]]] = {v: [] for v in variants}
    with EmbeddedBroker() as broker:
        pid = broker.process.pid if broker.process else None
        topics = {v: f"bench.producers.{v}" for v in variants}
        asyncio.run(ensure_topics(broker.address, [TopicSpec(t, PARTITIONS)
                                                   for t in topics.values()]))
        data = records(a.records + BATCH, "")
        print(f"producers: {a.records} records of {VALUE_BYTES} B + key + 2 headers, "
              f"{PARTITIONS} partitions, batches of {BATCH}, acks=all, embedded broker, "
              f"{a.rounds} rounds", flush=True)
        for rnd in range(a.rounds):
            for v in variants:
                mine = [o._replace(stream=topics[v]) for o in data]
                r = asyncio.run(measure(v, broker.address, mine, pid))
                runs[v].append(r)
                print(f"  round {rnd + 1} {v:11s} {r['records_per_s']:>9,.0f} rec/s "
                      f"{r['cpu_us_per_record']:6.1f} µs CPU/rec (loop thread "
                      f"{r['loop_cpu_us_per_record']:5.1f})  broker "
                      f"{r['broker_cpu_us_per_record']:6.1f} µs/rec", flush=True)
    summary = summarise(runs)
    print(table(summary))
    import aiokafka
    import confluent_kafka

    meta = {"records": a.records, "rounds": a.rounds, "batch": BATCH, "partitions": PARTITIONS,
            "value_bytes": VALUE_BYTES, "broker": "tansu", "cpus": os.cpu_count(),
            "python": platform.python_version(), "machine": platform.platform(),
            "aiokafka": aiokafka.__version__, "confluent_kafka": confluent_kafka.version()[0],
            "librdkafka": confluent_kafka.libversion()[0]}
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps({"meta": meta, "summary": summary, "runs": runs}, indent=2)
                     + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
