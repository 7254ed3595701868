"""What ``doa catalog`` costs against a broker holding 100k records per stream.

Run it as a script (performance is never asserted in tests)::

    python bench/bench_catalog.py [--records 100000] [--rounds 5] [--kafka]

On a fresh embedded broker (and with ``--kafka`` also a fresh Apache Kafka node) the sensors
topology is prepared (topics, registered schemas), ``readings`` and ``alerts`` get
``--records`` records each (4 partitions, a doa lineage header on each, written by a bare
producer), a node group commits an offset, and a process announces itself on
``_doa_topologies`` with a 1 s heartbeat for a few seconds. Then, per round:

- ``collect()``: :func:`doa.catalog.collect` in this process (the work of the command);
- ``doa catalog --json``: the whole command as a user runs it (Python start and imports too).

The catalog reads offsets and the last 64 records of each partition, never the whole log, so
its cost should not grow with the records held. The table shows min and median seconds; the
JSON goes to ``bench/results/catalog.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fill(address: str, records: int) -> None:
    """Prepare sensors, write ``records`` to readings and alerts, commit one group offset."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from doa.engines.launch import prepare
    from doa.events import LINEAGE_HEADER, Lineage, pack_lineage
    from doa.topology.loader import load_topology

    topology = load_topology(str(ROOT / "topologies" / "sensors.py"))
    prepare(topology, address)
    reading = {"sensor_id": "s1", "ts": 1, "value": 20.5, "location": {"lat": 52.0, "lon": 4.3},
               "unit": "C"}
    alert = {"sensor_id": "s1", "ts": 1, "value": 40.0, "mean": 20.0, "std": 1.0,
             "zscore": 20.0, "count": 11, "location": {"lat": 52.0, "lon": 4.3}}
    producer = KafkaProducer(bootstrap_servers=address, linger_ms=20, batch_size=256 * 1024,
                             acks=1)
    now = int(time.time() * 1000)
    for stream, record, node in (("readings", reading, "bench-feed"),
                                 ("alerts", alert, "flag_spikes")):
        codec = topology.codec(stream)
        value = codec.encode(record)
        header = pack_lineage(Lineage(b"\0" * 16, node, codec.schema.fingerprint))
        for i in range(records):
            producer.send(stream, value=value, key=b"s1", partition=i % 4,
                          timestamp_ms=now - (records - i) // 10,
                          headers=[(LINEAGE_HEADER, header)])
    producer.flush()
    producer.close()
    group = KafkaConsumer(bootstrap_servers=address, group_id="sensors.flag_spikes",
                          enable_auto_commit=False)
    tps = [TopicPartition("readings", p) for p in range(4)]
    group.assign(tps)
    group.commit({tp: OffsetAndMetadata(records // 8, "", -1) for tp in tps})
    group.close()


def measure(address: str, rounds: int) -> dict[str, Any]:
    from doa.catalog import collect

    in_process, command = [], []
    catalog: dict[str, Any] = {}
    for _ in range(rounds):
        t = time.perf_counter()
        catalog = collect(address)
        in_process.append(time.perf_counter() - t)
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "doa.cli.app", "catalog", "--broker",
                               address, "--json"], cwd=ROOT, capture_output=True, check=True)
        command.append(time.perf_counter() - t)
        json.loads(done.stdout)
    counts = {s["name"]: s["records"] for s in catalog["streams"]}
    return {"collect_s": in_process, "command_s": command, "records": counts,
            "alive": [n["name"] for n in catalog["nodes"] if n["alive"]]}


@contextlib.contextmanager
def broker(kind: str) -> Iterator[str]:
    if kind == "tansu":
        from doa.local.embedded import EmbeddedBroker

        with EmbeddedBroker() as b:
            yield b.address
    else:
        from doa.local.apache_kafka import LocalKafka

        with LocalKafka() as k:
            yield k.address


def run(kind: str, records: int, rounds: int) -> dict[str, Any]:
    from doa.catalog.publish import Announcer
    from doa.topology.loader import load_topology

    with broker(kind) as address:
        t = time.perf_counter()
        fill(address, records)
        filled = time.perf_counter() - t
        topology = load_topology(str(ROOT / "topologies" / "sensors.py"))
        announcer = Announcer(topology, address, ["flag_spikes"], "kafka", interval_s=1.0)
        announcer.start()
        deadline = time.monotonic() + 30
        while announcer.sent < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            result = measure(address, rounds)
        finally:
            announcer.stop()
    return {"broker": kind, "records_per_stream": records, "fill_s": filled, **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--kafka", action="store_true", help="also on Apache Kafka")
    args = parser.parse_args()
    results = [run(k, args.records, args.rounds)
               for k in (("tansu", "kafka") if args.kafka else ("tansu",))]
    print(f"{'broker':8} {'records/stream':>14} {'case':22} {'min s':>7} {'median s':>9}")
    for r in results:
        for case, key in (("collect()", "collect_s"), ("doa catalog --json", "command_s")):
            print(f"{r['broker']:8} {r['records_per_stream']:>14,} {case:22} "
                  f"{min(r[key]):7.3f} {statistics.median(r[key]):9.3f}")
        print(f"{'':8} counts read: {r['records']}; alive: {r['alive']}")
    out = {"python": platform.python_version(), "machine": platform.machine(),
           "results": results}
    path = ROOT / "bench" / "results" / "catalog.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
