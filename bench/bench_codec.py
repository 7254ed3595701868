"""Cost of validation at the edge: doa's Codec against bare fastavro, measured in one run.

Run it as a script (performance is never asserted in unit tests)::

    python bench/bench_codec.py [--records 1000] [--rounds 31] [--seed 12]

On a batch of seeded 12-field records it times, per record:

- encode: bare ``fastavro.schemaless_writer``; doa ``Codec.encode`` (validated, with the
  single-object header); and the naive second pass, ``fastavro.validation.validate`` then
  ``schemaless_writer``;
- decode: bare ``fastavro.schemaless_reader``; doa ``Codec.decode``;
- then, in rounds of their own, ``Codec.encode`` with and without the encoder generated per
  schema (:mod:`doa.wire.encoder`) on ``doa.Prediction`` records with 20 features, and on a
  flat 9-field record (a string, a long, seven doubles).

Rounds are interleaved (each round times every case once, in a rotating order) so that drift
in the machine's speed hits all cases alike; the table shows the min and the median over
rounds, and the ratio to the bare fastavro case of the same direction. The goal: encoding with
validation costs at most 1.3x bare fastavro. Results go to ``bench/results/codec.json``.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import random
import statistics
import string
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from fastavro.validation import validate

from doa.wire.codec import HEADER_SIZE, Codec
from doa.wire.schema import Schema, SchemaSet, builtin_schema_dir

GOAL = 1.3
SCHEMA: dict[str, Any] = {
    "type": "record", "name": "Measurement", "namespace": "bench", "fields": [
        {"name": "sensor_id", "type": "string"},
        {"name": "ts", "type": "long"},
        {"name": "value", "type": "double"},
        {"name": "score", "type": "float"},
        {"name": "count", "type": "int"},
        {"name": "ok", "type": "boolean"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind",
                                  "symbols": ["TEMP", "HUMIDITY", "PRESSURE"]}},
        {"name": "location", "type": {"type": "record", "name": "Location", "fields": [
            {"name": "lat", "type": "double"}, {"name": "lon", "type": "double"}]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "unit", "type": ["null", "string"], "default": None},
        {"name": "raw", "type": "bytes"},
    ]}


def make_record(rng: random.Random) -> dict[str, Any]:
    def word(n: int) -> str:
        return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))

    return {
        "sensor_id": f"sensor-{rng.randrange(1000):03d}",
        "ts": 1_700_000_000_000 + rng.randrange(10**9),
        "value": rng.gauss(20.0, 5.0),
        "score": rng.randrange(-1000, 1000) / 8,  # exact in float32
        "count": rng.randrange(2**31),
        "ok": rng.random() < 0.9,
        "kind": rng.choice(["TEMP", "HUMIDITY", "PRESSURE"]),
        "location": {"lat": rng.uniform(-90, 90), "lon": rng.uniform(-180, 180)},
        "tags": [word(rng.randint(3, 8)) for _ in range(rng.randint(0, 4))],
        "attrs": {word(4): rng.randrange(10**6) for _ in range(rng.randint(0, 3))},
        "unit": rng.choice([None, "C", "%", "hPa"]),
        "raw": rng.randbytes(rng.randint(0, 16)),
    }


def cases(records: list[dict[str, Any]]) -> dict[str, tuple[str, Callable[[], object]]]:
    """name -> (direction, a function that handles the whole batch)."""
    parsed = parse_schema(SCHEMA)  # parsed once, as any sensible user of fastavro does
    codec = Codec("bench", Schema.from_json(SCHEMA))
    payloads = [codec.encode(r) for r in records]
    bodies = [p[HEADER_SIZE:] for p in payloads]

    def bare_write(record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        schemaless_writer(buf, parsed, record)
        return buf.getvalue()

    def validate_then_write(record: dict[str, Any]) -> bytes:
        validate(record, parsed, raise_errors=True)
        return bare_write(record)

    # the same bytes, and the same records back, before anything is timed
    assert [bare_write(r) for r in records] == bodies
    assert [schemaless_reader(io.BytesIO(b), parsed) for b in bodies] == records
    assert [codec.decode(p) for p in payloads] == records

    return {
        "encode: fastavro schemaless_writer (bare)": (
            "encode", lambda: [bare_write(r) for r in records]),
        "encode: doa Codec.encode (validated)": (
            "encode", lambda: [codec.encode(r) for r in records]),
        "encode: fastavro validate + write (naive 2nd pass)": (
            "encode", lambda: [validate_then_write(r) for r in records]),
        "decode: fastavro schemaless_reader (bare)": (
            "decode", lambda: [schemaless_reader(io.BytesIO(b), parsed) for b in bodies]),
        "decode: doa Codec.decode": (
            "decode", lambda: [codec.decode(p) for p in payloads]),
    }


PREDICTION_FEATURES = 20
FLAT: dict[str, Any] = {  # 9 fields: an id, a timestamp, seven doubles
    "type": "record", "name": "Flat", "namespace": "bench", "fields": [
        {"name": "id", "type": "string"}, {"name": "ts", "type": "long"},
        *({"name": f"x{i}", "type": "double"} for i in range(7))]}


def encoder_cases(rng: random.Random, n: int) -> dict[str, tuple[str, Callable[[], object]]]:
    """Codec.encode without and with the generated encoder (doa.wire.encoder), same records.

    ``doa.Prediction`` with a map of 20 features, and a flat 9-field record. The old path is
    the codec with its generated encoder switched off: the check, then fastavro's writer.
    """
    prediction = SchemaSet.load(builtin_schema_dir())["doa.Prediction"]
    preds = [{"join": f"j-{i}", "key": f"k{i % 7}", "model": "logistic", "model_version": 3,
              "prediction": rng.random(), "probabilities": {"0": 0.25, "1": 0.75},
              "score": None, "features": {f"feature_{j}": rng.gauss(0, 1)
                                          for j in range(PREDICTION_FEATURES)},
              "categories": {"country": "nl"}, "timestamp": 1_700_000_000_000 + i}
             for i in range(n)]
    flats = [{"id": f"id-{i}", "ts": 1_700_000_000_000 + i,
              **{f"x{j}": rng.uniform(-1e3, 1e3) for j in range(7)}} for i in range(n)]
    out: dict[str, tuple[str, Callable[[], object]]] = {}
    for label, schema, records in (("doa.Prediction", prediction, preds),
                                   ("flat 9 fields", Schema.from_json(FLAT), flats)):
        new, old = Codec("bench", schema), Codec("bench", schema)
        old._encode = lambda record: None  # the path before the generated encoder
        assert [new.encode(r) for r in records] == [old.encode(r) for r in records]
        out[f"{label}: old path (check + fastavro)"] = (label, _encode_all(old, records))
        out[f"{label}: generated encoder"] = (label, _encode_all(new, records))
    return out


def _encode_all(codec: Codec, records: list[dict[str, Any]]) -> Callable[[], object]:
    return lambda: [codec.encode(r) for r in records]


def measure(batch: dict[str, tuple[str, Callable[[], object]]], n: int, rounds: int
            ) -> dict[str, list[float]]:
    """Seconds per record, one entry per round; the cases take turns within each round."""
    names = list(batch)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # warm up
        batch[name][1]()
    for i in range(rounds):
        order = names[i % len(names):] + names[: i % len(names)]
        for name in order:
            (t,) = timeit.repeat(batch[name][1], number=1, repeat=1)
            times[name].append(t / n)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "codec.json")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    records = [make_record(rng) for _ in range(args.records)]
    batch = cases(records)
    times = measure(batch, len(records), args.rounds)

    base = {d: statistics.median(times[name]) for name, (d, _) in batch.items()
            if "(bare)" in name}
    base_min = {d: min(times[name]) for name, (d, _) in batch.items() if "(bare)" in name}
    results: dict[str, dict[str, float]] = {}
    for name, (direction, _) in batch.items():
        ts = times[name]
        results[name] = {
            "min_us": min(ts) * 1e6,
            "median_us": statistics.median(ts) * 1e6,
            "ratio_min": min(ts) / base_min[direction],
            "ratio_median": statistics.median(ts) / base[direction],
        }

    width = max(map(len, results))
    print(f"{args.records} records x {args.rounds} interleaved rounds, seed {args.seed}, "
          f"Python {platform.python_version()}, fastavro {fastavro.__version__}")
    print(f"{'case':<{width}}  {'min us':>8}  {'median us':>9}  {'x bare (min)':>12}  "
          f"{'x bare (median)':>15}")
    for name, r in results.items():
        print(f"{name:<{width}}  {r['min_us']:>8.2f}  {r['median_us']:>9.2f}  "
              f"{r['ratio_min']:>12.2f}  {r['ratio_median']:>15.2f}")
    encode = results["encode: doa Codec.encode (validated)"]
    met = encode["ratio_median"] <= GOAL
    print(f"goal: Codec.encode <= {GOAL}x bare fastavro: {encode['ratio_median']:.2f}x "
          f"(median), {encode['ratio_min']:.2f}x (min) -> {'met' if met else 'NOT met'}")

    gen = encoder_cases(random.Random(args.seed), args.records)
    gen_times = measure(gen, args.records, args.rounds)
    generated = {name: {"min_us": min(ts) * 1e6, "median_us": statistics.median(ts) * 1e6}
                 for name, ts in gen_times.items()}
    print("Codec.encode, old path against the generated encoder (same run, same records):")
    for name, r in generated.items():
        print(f"{name:<{width}}  {r['min_us']:>8.2f}  {r['median_us']:>9.2f}")

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "python": platform.python_version(), "platform": platform.platform(),
        "fastavro": fastavro.__version__, "records": args.records, "rounds": args.rounds,
        "seed": args.seed, "schema": SCHEMA, "cases": results,
        "goal": {"encode_ratio_max": GOAL, "encode_ratio_median": encode["ratio_median"],
                 "encode_ratio_min": encode["ratio_min"], "met": met},
        "generated_encoder": generated,
    }, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
