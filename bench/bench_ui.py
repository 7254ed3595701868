"""What each ``doa ui`` endpoint costs against the embedded broker holding 100k records a stream.

    python bench/bench_ui.py [--records 100000] [--repeat 5]

The sensors topology's ``readings`` (4 partitions) and ``alerts`` streams each get
``--records`` records through doa's Publisher (``alerts`` written under a node's name, so the
catalog samples headers of both kinds). Then the app of ``doa ui`` (in-process, over HTTP on
127.0.0.1) is asked, ``--repeat`` times each: ``/api/catalog`` with the cache off (one
:func:`doa.catalog.collect`), ``/api/records`` for the last 20 and 500 records,
``/api/lineage`` by coordinates (one fetch) and by event id (a scan of the topology's
streams from their start: it grows with their length). Median wall ms per request; prints a
table and writes bench/results/ui.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from doa.client import Publisher  # noqa: E402
from doa.engines.launch import prepare  # noqa: E402
from doa.local.embedded import EmbeddedBroker  # noqa: E402
from doa.topology.loader import load_topology  # noqa: E402


def fill(address: str, n: int) -> None:
    t = load_topology(str(ROOT / "topologies" / "sensors.py"))
    prepare(t, address)
    t0 = 1_700_000_000_000
    with Publisher("readings", broker=address, topology=t, name="sensor-feed") as pub:
        for i in range(n):
            sensor = f"sensor-{i % 20:02d}"
            pub.send({"sensor_id": sensor, "ts": t0 + i, "value": 20.0 + (i % 7),
                      "location": {"lat": 52.0, "lon": 4.3}, "unit": "C"}, timestamp_ms=t0 + i)
    with Publisher("alerts", broker=address, topology=t, name="flag_spikes") as pub:
        for i in range(n):
            pub.send({"sensor_id": f"sensor-{i % 20:02d}", "ts": t0 + i, "value": 40.0,
                      "mean": 20.0, "std": 1.0, "zscore": 20.0, "count": i + 1,
                      "location": {"lat": 52.0, "lon": 4.3}}, timestamp_ms=t0 + i)


async def measure(address: str, repeat: int) -> dict[str, Any]:
    from aiohttp.test_utils import TestClient, TestServer

    from doa.ui.app import make_app

    t = load_topology(str(ROOT / "topologies" / "sensors.py"))
    app = make_app(address, [t], max_age_s=0.0)
    out: dict[str, Any] = {}
    async with TestClient(TestServer(app)) as client:
        async def timed(name: str, path: str) -> Any:
            times, body = [], None
            for _ in range(repeat):
                began = time.perf_counter()
                r = await client.get(path)
                body = await r.json()
                assert r.status == 200, body
                times.append((time.perf_counter() - began) * 1000)
            out[name] = {"median_ms": round(statistics.median(times), 1),
                         "min_ms": round(min(times), 1)}
            return body

        await timed("catalog (collect, uncached)", "/api/catalog")
        await timed("records n=20", "/api/records?stream=readings&n=20")
        last = await timed("records n=500", "/api/records?stream=readings&n=500")
        oldest = last["records"][-1]
        await timed("lineage by coordinates", f"/api/lineage?event={oldest['where']}")
        await timed("lineage by id (scan)", f"/api/lineage?event={oldest['id']}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with EmbeddedBroker() as broker:
        began = time.perf_counter()
        fill(broker.address, args.records)
        print(f"published {args.records:,} records to readings and alerts in "
              f"{time.perf_counter() - began:.1f} s")
        result = asyncio.run(measure(broker.address, args.repeat))
    for name, r in result.items():
        print(f"{name:30s} {r['median_ms']:9.1f} ms (min {r['min_ms']:.1f})")
    path = ROOT / "bench" / "results" / "ui.json"
    path.write_text(json.dumps({"records_per_stream": args.records, "broker": "tansu",
                                "results": result}, indent=1) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
