"""Cost of strict decoding: doa's Codec.decode against bare fastavro, measured in one run.

Run it as a script (performance is never asserted in unit tests)::

    python bench/bench_decode.py [--records 1000] [--rounds 31] [--seed 12]

Two seeded workloads: the 12-field record of ``bench_codec.py`` and a record of unions
(optional fields of every kind, a three-branch union, an array of optional strings). Per
record, each case decodes a whole batch:

- ``fastavro schemaless_reader (bare)``: the body only, no checks (the baseline);
- ``doa Codec.decode (strict)``: the single-object header, then the reader generated per
  schema by ``doa.wire.fastcheck``, which checks and decodes in one pass;
- ``fastcheck reader, then fastavro``: the other design (check first, then let fastavro
  decode), to show why doa does not take it;
- ``Apache avro DatumReader``: the reference implementation, for scale.

Rounds are interleaved (each round times every case once, in a rotating order) so that drift
in the machine's speed hits all cases alike; the table shows the min and the median over
rounds and the ratio to bare fastavro. The goal: strict decoding costs at most 1.3x bare
fastavro on both workloads. Results go to ``bench/results/decode.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import avro
import avro.io
import avro.schema
import fastavro
from fastavro import parse_schema, schemaless_reader

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_codec import SCHEMA as MEASUREMENT  # type: ignore[import-not-found]
from bench_codec import make_record as make_measurement
from bench_codec import measure as measure_cases

from doa.wire.codec import HEADER_SIZE, Codec
from doa.wire.fastcheck import compile_reader
from doa.wire.schema import Schema

GOAL = 1.3
UNIONS: dict[str, Any] = {
    "type": "record", "name": "Observation", "namespace": "bench", "fields": [
        {"name": "id", "type": "long"},
        {"name": "source", "type": ["null", "string"], "default": None},
        {"name": "value", "type": ["null", "double"], "default": None},
        {"name": "count", "type": ["null", "long"], "default": None},
        {"name": "flag", "type": ["null", "boolean"], "default": None},
        {"name": "reading", "type": ["null", "double", "string"], "default": None},
        {"name": "level", "type": ["null", {"type": "enum", "name": "Level",
                                            "symbols": ["LOW", "MID", "HIGH"]}]},
        {"name": "where", "type": ["null", {"type": "record", "name": "Where", "fields": [
            {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}]},
        {"name": "labels", "type": {"type": "array", "items": ["null", "string"]}},
    ]}


def make_union_record(rng: random.Random) -> dict[str, Any]:
    def maybe(value: Any) -> Any:
        return value if rng.random() < 0.7 else None

    return {
        "id": rng.randrange(2**40),
        "source": maybe(f"station-{rng.randrange(100)}"),
        "value": maybe(rng.gauss(0.0, 10.0)),
        "count": maybe(rng.randrange(10**6)),
        "flag": maybe(rng.random() < 0.5),
        "reading": rng.choice([None, rng.random(), f"r{rng.randrange(10)}"]),
        "level": maybe(rng.choice(["LOW", "MID", "HIGH"])),
        "where": maybe({"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)}),
        "labels": [maybe(f"l{rng.randrange(50)}") for _ in range(rng.randint(0, 3))],
    }


WORKLOADS: dict[str, tuple[dict[str, Any], Callable[[random.Random], dict[str, Any]]]] = {
    "12-field record": (MEASUREMENT, make_measurement),
    "record of unions": (UNIONS, make_union_record),
}


def cases(schema_json: dict[str, Any], records: list[dict[str, Any]]
          ) -> dict[str, Callable[[], object]]:
    """name -> a function that decodes the whole batch."""
    parsed = parse_schema(schema_json)  # parsed once, as any sensible user of fastavro does
    codec = Codec("bench", Schema.from_json(schema_json))
    read = compile_reader(schema_json)
    apache = avro.io.DatumReader(avro.schema.parse(json.dumps(schema_json)))
    payloads = [codec.encode(r) for r in records]
    bodies = [p[HEADER_SIZE:] for p in payloads]

    def check_then_fastavro(body: bytes) -> Any:
        read(body, 0)
        return schemaless_reader(io.BytesIO(body), parsed)

    def apache_read(body: bytes) -> Any:
        return apache.read(avro.io.BinaryDecoder(io.BytesIO(body)))

    # every case gives the same records back before anything is timed
    assert [schemaless_reader(io.BytesIO(b), parsed) for b in bodies] == records
    assert [codec.decode(p) for p in payloads] == records
    assert [check_then_fastavro(b) for b in bodies] == records
    assert [apache_read(b) for b in bodies] == records

    return {
        "fastavro schemaless_reader (bare)": (
            lambda: [schemaless_reader(io.BytesIO(b), parsed) for b in bodies]),
        "doa Codec.decode (strict)": lambda: [codec.decode(p) for p in payloads],
        "fastcheck reader, then fastavro": lambda: [check_then_fastavro(b) for b in bodies],
        "Apache avro DatumReader": lambda: [apache_read(b) for b in bodies],
    }


def measure(batch: dict[str, Callable[[], object]], n: int, rounds: int
            ) -> dict[str, list[float]]:
    """Seconds per record, one entry per round: bench_codec's interleaved rounds."""
    out: dict[str, list[float]] = measure_cases({name: (name, fn) for name, fn in batch.items()},
                                                n, rounds)
    return out


def summarise(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    bare = times["fastavro schemaless_reader (bare)"]
    return {name: {"min_us": min(ts) * 1e6, "median_us": statistics.median(ts) * 1e6,
                   "ratio_min": min(ts) / min(bare),
                   "ratio_median": statistics.median(ts) / statistics.median(bare)}
            for name, ts in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "decode.json")
    args = parser.parse_args(argv)

    print(f"{args.records} records x {args.rounds} interleaved rounds, seed {args.seed}, "
          f"Python {platform.python_version()}, fastavro {fastavro.__version__}, "
          f"avro {avro.__version__}")
    out: dict[str, Any] = {}
    met = True
    for workload, (schema_json, make) in WORKLOADS.items():
        rng = random.Random(args.seed)
        records = [make(rng) for _ in range(args.records)]
        results = summarise(measure(cases(schema_json, records), len(records), args.rounds))
        width = max(map(len, results))
        print(f"\n{workload}")
        print(f"{'case':<{width}}  {'min us':>8}  {'median us':>9}  {'x bare (min)':>12}  "
              f"{'x bare (median)':>15}")
        for name, r in results.items():
            print(f"{name:<{width}}  {r['min_us']:>8.2f}  {r['median_us']:>9.2f}  "
                  f"{r['ratio_min']:>12.2f}  {r['ratio_median']:>15.2f}")
        strict = results["doa Codec.decode (strict)"]
        ok = strict["ratio_median"] <= GOAL
        met = met and ok
        print(f"goal: Codec.decode <= {GOAL}x bare fastavro: {strict['ratio_median']:.2f}x "
              f"(median), {strict['ratio_min']:.2f}x (min) -> {'met' if ok else 'NOT met'}")
        out[workload] = {"schema": schema_json, "cases": results,
                         "decode_ratio_median": strict["ratio_median"],
                         "decode_ratio_min": strict["ratio_min"], "met": ok}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "python": platform.python_version(), "platform": platform.platform(),
        "fastavro": fastavro.__version__, "avro": avro.__version__, "records": args.records,
        "rounds": args.rounds, "seed": args.seed, "workloads": out,
        "goal": {"decode_ratio_max": GOAL, "met": met},
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
