"""Export rate of ``doa export`` on the embedded broker, against a bare read loop.

    python bench/bench_export.py [--records 100000] [--rounds 3] [--seed 12]

One stream of ``--records`` records of the 12-field ``Measurement`` of bench_codec.py
(strings, numbers, an enum, a nested record, an array, a map, a nullable union, bytes),
published by ``doa.client.Publisher`` (so each carries a lineage header) into a fresh
embedded broker (tansu), one partition. Cases, each timed from the call to the closed file
(connecting included), rounds interleaved:

- ``doa export`` to JSON lines, CSV and Parquet (``doa.collect.export.export``: end offsets
  fixed at the start, strict decoding with the registered versions, rows converted for Arrow,
  Parquet in row groups of 65,536 rows);
- the baselines: an aiokafka ``getmany`` loop + fastavro ``schemaless_reader`` (no checks) +
  ``pyarrow`` ``ParquetWriter`` in the same row groups, and the same loop + ``orjson`` lines.

Prints a table (records/s: best and median over rounds, and the ratio to the baseline of the
same format) and writes bench/results/export.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_codec import SCHEMA, make_record  # type: ignore[import-not-found]  # noqa: E402

from doa.client import Publisher  # noqa: E402
from doa.collect.export import export  # noqa: E402
from doa.engines.launch import prepare  # noqa: E402
from doa.local.embedded import EmbeddedBroker  # noqa: E402
from doa.topology.topology import Topology  # noqa: E402
from doa.wire.codec import HEADER_SIZE  # noqa: E402

GROUP = 65_536


def topology(schemas: Path) -> Topology:
    (schemas / "measurement.avsc").write_text(json.dumps(SCHEMA))
    t = Topology("bench", schemas=schemas)
    t.stream("measurements", schema="bench.Measurement", partitions=1)
    return t


def publish(t: Topology, address: str, n: int, seed: int) -> None:
    rng = random.Random(seed)
    with Publisher("measurements", broker=address, topology=t, linger_ms=20) as pub:
        for i in range(n):
            pub.send(make_record(rng), timestamp_ms=1_700_000_000_000 + i)


async def _bare(address: str, n: int, write: Callable[[list[dict[str, Any]]], None]) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from fastavro import parse_schema, schemaless_reader

    parsed = parse_schema(SCHEMA)
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                max_partition_fetch_bytes=16 << 20, fetch_max_bytes=64 << 20)
    await consumer.start()
    try:
        tp = TopicPartition("measurements", 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        seen = 0
        while seen < n:
            got = (await consumer.getmany(tp, timeout_ms=200, max_records=10_000)).get(tp, [])
            rows = [schemaless_reader(io.BytesIO(m.value[HEADER_SIZE:]), parsed) for m in got]
            seen += len(rows)
            write(rows)  # type: ignore[arg-type]  # records of a record schema are dicts
    finally:
        await consumer.stop()


def bare_parquet(address: str, n: int, out: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from doa.collect.arrow import arrow_schema

    schema = arrow_schema(SCHEMA)
    pending: list[dict[str, Any]] = []
    with pq.ParquetWriter(out, schema) as writer:
        def write(rows: list[dict[str, Any]]) -> None:
            pending.extend(rows)
            while len(pending) >= GROUP or (pending and not rows):
                chunk = pending[:GROUP]
                writer.write_table(pa.Table.from_pylist(chunk, schema=schema))
                del pending[:GROUP]

        asyncio.run(_bare(address, n, write))
        if pending:
            writer.write_table(pa.Table.from_pylist(pending, schema=schema))


def bare_jsonl(address: str, n: int, out: Path) -> None:
    import orjson

    with open(out, "wb") as f:
        def write(rows: list[dict[str, Any]]) -> None:
            f.write(b"".join(orjson.dumps(r, default=lambda b: b.hex(),
                                          option=orjson.OPT_APPEND_NEWLINE) for r in rows))

        asyncio.run(_bare(address, n, write))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=12)
    args = parser.parse_args()
    n = args.records
    with tempfile.TemporaryDirectory() as tmp, EmbeddedBroker() as broker:
        work = Path(tmp)
        (work / "schemas").mkdir()
        t = topology(work / "schemas")
        prepare(t, broker.address)
        began = time.perf_counter()
        publish(t, broker.address, n, args.seed)
        print(f"published {n:,} records in {time.perf_counter() - began:.1f} s")

        def doa(fmt: str) -> Callable[[], int]:
            def run() -> int:
                return export(t, "measurements", broker=broker.address,
                              out=str(work / f"doa.{fmt}")).records
            return run

        cases: dict[str, tuple[str, Callable[[], Any]]] = {
            "doa export, JSON lines": ("jsonl", doa("jsonl")),
            "doa export, CSV": ("csv", doa("csv")),
            "doa export, Parquet": ("parquet", doa("parquet")),
            "baseline: aiokafka + fastavro + orjson": (
                "jsonl", lambda: bare_jsonl(broker.address, n, work / "bare.jsonl")),
            "baseline: aiokafka + fastavro + pyarrow": (
                "parquet", lambda: bare_parquet(broker.address, n, work / "bare.parquet")),
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        names = list(cases)
        for r in range(args.rounds):
            for name in names[r % len(names):] + names[:r % len(names)]:
                began = time.perf_counter()
                got = cases[name][1]()
                elapsed = time.perf_counter() - began
                assert got in (None, n), f"{name} wrote {got} records, expected {n}"
                rates[name].append(n / elapsed)
    base = {"jsonl": max(rates["baseline: aiokafka + fastavro + orjson"]),
            "parquet": max(rates["baseline: aiokafka + fastavro + pyarrow"])}
    results = {}
    print(f"\n{'case':42} {'best rec/s':>11} {'median':>11} {'vs baseline':>12}")
    for name, (fmt, _) in cases.items():
        best, median = max(rates[name]), statistics.median(rates[name])
        ratio = best / base[fmt] if fmt in base else None
        results[name] = {"format": fmt, "best": round(best), "median": round(median),
                         "rounds": [round(x) for x in rates[name]],
                         "vs_baseline": None if ratio is None else round(ratio, 3)}
        shown = "" if ratio is None else f"{ratio:.2f}x"
        print(f"{name:42} {best:>11,.0f} {median:>11,.0f} {shown:>12}")
    report = {"python": platform.python_version(), "platform": platform.platform(),
              "records": n, "rounds": args.rounds, "seed": args.seed, "broker": "tansu",
              "row_group": GROUP, "results": results}
    out = ROOT / "bench" / "results" / "export.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["results"], indent=2))


if __name__ == "__main__":
    main()
