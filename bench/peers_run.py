"""One variant of the peers benchmark, in this process (``python -m bench.peers_run``).

    python -m bench.peers_run VARIANT --broker HOST:PORT --records N --name NAME [--profile]
                              [--inputs PREFIX]

Reads the ``N`` records preloaded on ``txns`` from the beginning (its own consumer group),
does the variant's work, writes its outputs to its own topics, and prints one JSON line:
records/s from its first fetched batch to its last, and the process CPU time (every thread)
per record over the same span. ``--records 0`` runs until the process is terminated (the
latency mode, :mod:`bench.peers_latency`, whose inputs are ``PREFIX``txns and ``PREFIX``labels).
Every variant's output carries its input's timestamp, as doa's outputs carry the input's event
time, so that the latency mode measures all variants alike. ``--profile`` runs the variant
under cProfile and prints the top 25 functions by own time after the JSON line
(``PEERS_PROFILE_OUT=FILE`` also writes the whole profile there, for ``pstats``).
``--linger-ms`` and ``--fetch-max-wait-ms`` set every variant's producer linger and consumer
fetch wait (the latency mode sets them as a user tuning for latency would; by default each
variant keeps its own: 5 and 10 ms for the loops and doa, the clients' defaults for Quix).
doa's variants read ``DOA_*`` settings from the environment (``doa-pair`` chains as
``DOA_CHAIN`` says, on by default); ``doa-pair-chained`` and ``doa-pair-unchained`` are
``doa-pair`` with chaining on and off whatever ``DOA_CHAIN`` says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from bench import peers_base as base
from bench import peers_workload as w
from bench.peers_base import Clock, learner_codec, pick
from bench.peers_quix import quix_learner, quix_pair


# -- aiokafka ------------------------------------------------------------------------------------
async def aiokafka_loop(a: argparse.Namespace, learn: bool) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=a.broker, linger_ms=pick(a.linger_ms, 5),
                                acks="all")
    consumer = AIOKafkaConsumer(f"{a.inputs}txns", bootstrap_servers=a.broker, group_id=a.name,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                session_timeout_ms=3000, heartbeat_interval_ms=1000,
                                fetch_max_wait_ms=pick(a.fetch_max_wait_ms, 10))
    await producer.start()
    await consumer.start()
    decode, encode = learner_codec()
    learner = w.Learner()
    out, clock, seen, outputs = f"{a.name}.out", Clock(), 0, 0
    try:
        while not a.records or seen < a.records:
            data = await consumer.getmany(timeout_ms=100, max_records=256)
            if not data:
                continue
            clock.first()
            futures = []
            for messages in data.values():
                for m in messages:
                    value = encode(learner.step(decode(m.value))) if learn else m.value
                    futures.append(await producer.send(out, value, key=m.key,
                                                       partition=m.partition,
                                                       timestamp_ms=m.timestamp))
            seen += len(futures)
            outputs += len(futures)
            await asyncio.gather(*futures)
            await consumer.commit()
        clock.end()
    finally:
        await consumer.stop()
        await producer.stop()
    return clock.result(seen, outputs)


# -- confluent-kafka -------------------------------------------------------------------------------
def confluent_loop(a: argparse.Namespace, learn: bool) -> dict[str, Any]:
    from confluent_kafka import Consumer, Producer  # type: ignore[import-untyped]

    consumer = Consumer({"bootstrap.servers": a.broker, "group.id": a.name,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "fetch.wait.max.ms": pick(a.fetch_max_wait_ms, 10),
                         "session.timeout.ms": 6000})
    producer = Producer({"bootstrap.servers": a.broker, "linger.ms": pick(a.linger_ms, 5),
                         "acks": "all",
                         "enable.idempotence": False})
    consumer.subscribe([f"{a.inputs}txns"])
    decode, encode = learner_codec()
    learner = w.Learner()
    out, clock, seen = f"{a.name}.out", Clock(), 0
    try:
        while not a.records or seen < a.records:
            messages = consumer.consume(256, timeout=0.1)
            if not messages:
                continue
            clock.first()
            for m in messages:
                if m.error():
                    continue
                value = encode(learner.step(decode(m.value()))) if learn else m.value()
                producer.produce(out, value, key=m.key(), partition=m.partition(),
                                 timestamp=m.timestamp()[1])
                seen += 1
            producer.poll(0)
            producer.flush()  # acknowledged before the commit, as doa does
            consumer.commit(asynchronous=True)
        clock.end()
    finally:
        consumer.close()
    return clock.result(seen, seen)


# -- faust -----------------------------------------------------------------------------------------
async def faust_agent(a: argparse.Namespace) -> dict[str, Any]:
    from doa.engines.faust import app_settings, faust

    app = faust.App(a.name, broker=f"kafka://{a.broker}", **app_settings())
    src = app.topic("txns", key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")
    out = app.topic(f"{a.name}.out", key_type=bytes, value_type=bytes, key_serializer="raw",
                    value_serializer="raw")
    decode, encode = learner_codec()
    learner = w.Learner()
    clock, count, done = Clock(), [0], asyncio.Event()

    @app.agent(src)  # type: ignore[untyped-decorator]
    async def learn(stream: Any) -> None:
        async for values in stream.take(256, within=0.05):
            clock.first()
            for value in values:
                r = decode(value)
                await out.send(key=r["account"].encode(), value=encode(learner.step(r)))
            count[0] += len(values)
            if count[0] >= a.records and not done.is_set():
                await app.producer.flush()
                clock.end()
                done.set()

    await app.start()
    await asyncio.wait_for(done.wait(), timeout=600)
    await app.stop()
    return clock.result(count[0], count[0])


# -- doa -------------------------------------------------------------------------------------------
def doa_settings(a: argparse.Namespace, chain: bool | None = None) -> Any:
    """doa's settings from ``DOA_*`` variables, with ``--linger-ms``/``--fetch-max-wait-ms``
    and chaining on or off if ``chain`` says so."""
    import dataclasses

    from doa.engines import EngineSettings

    s = EngineSettings.from_env()
    return dataclasses.replace(s, linger_ms=pick(a.linger_ms, s.linger_ms),
                               fetch_max_wait_ms=pick(a.fetch_max_wait_ms, s.fetch_max_wait_ms),
                               chain=s.chain if chain is None else int(chain))


def doa_node(a: argparse.Namespace, kind: str, compiled: bool = False,
             chain: bool | None = None, nodes: list[str] | None = None) -> dict[str, Any]:
    """Run doa's variant ``kind`` (its ``nodes``, default all) in this process until the last
    node has read every input; ``--records 0``: until terminated. ``--mark FILE``: write the
    monotonic time and process CPU time of the first batch there (:func:`doa_pair_split`)."""
    import tempfile
    from pathlib import Path

    from doa.engines.launch import prepare, run_nodes

    schemas = w.write_schemas(Path(tempfile.mkdtemp(prefix="peers-schemas-")))
    t = w.topology(kind, a.name, schemas, compiled=compiled, inputs=a.inputs)
    prepare(t, a.broker)
    run = nodes or list(t.nodes)
    last = "model" if kind == "pair" and "model" in run else run[-1]
    need = 2 * a.records if kind == "pair" else a.records
    clock = Clock()

    def done(stats: dict[str, Any]) -> bool:
        if any(s.records_in for s in stats.values()) and not clock.t0:
            clock.first()
            if a.mark:
                Path(a.mark).write_text(json.dumps([clock.t0, clock.c0]))
        if a.records and stats[last].records_in >= need:
            clock.end()
            return True
        return False

    report = asyncio.run(run_nodes(t, a.broker, run, seconds=600, signals=bool(a.mark),
                                   until=done, settings=doa_settings(a, chain)))
    first = min(s.first_batch_at or 0.0 for s in report.stats.values())
    wall = (report.stats[last].last_batch_at or 0.0) - first
    out = report.stats[last].records_out
    result = clock.result(a.records, out)
    result["records_per_s"] = a.records / wall if wall > 0 else 0.0
    return result


def doa_pair_split(a: argparse.Namespace) -> dict[str, Any]:
    """The pair with each node in a process of its own, as ``doa deploy`` runs a topology (one
    compose service per node): the kernel node in a child process, the learner here. Records/s
    from the child's first batch to the learner's last; CPU: both processes' over their spans.
    """
    import subprocess
    import tempfile
    import time
    from pathlib import Path

    mark = Path(tempfile.mkdtemp(prefix="peers-mark-")) / "first"
    cmd = [sys.executable, "-m", "bench.peers_run", "doa-pair", "--broker", a.broker,
           "--records", "0", "--name", a.name, "--inputs", a.inputs, "--only", "features",
           "--mark", str(mark)]
    if a.linger_ms is not None:
        cmd += ["--linger-ms", str(a.linger_ms)]
    if a.fetch_max_wait_ms is not None:
        cmd += ["--fetch-max-wait-ms", str(a.fetch_max_wait_ms)]
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    try:
        result = doa_node(a, "pair", nodes=["model"])
        ticks = os.sysconf("SC_CLK_TCK")
        stat = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        child_cpu = (int(stat[11]) + int(stat[12])) / ticks  # utime + stime, every thread
        t0, c0 = json.loads(mark.read_text())
        wall = time.monotonic() - t0  # the learner's last batch was a moment ago
    finally:
        child.terminate()
        child.wait(timeout=60)
    result["records_per_s"] = min(result["records_per_s"], a.records / wall)
    result["cpu_us_per_record"] += (child_cpu - c0) / a.records * 1e6
    return result


VARIANTS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "aiokafka-pass": lambda a: asyncio.run(aiokafka_loop(a, learn=False)),
    "confluent-pass": lambda a: confluent_loop(a, learn=False),
    "doa-pass": lambda a: doa_node(a, "passthrough"),
    "aiokafka-learner": lambda a: asyncio.run(aiokafka_loop(a, learn=True)),
    "confluent-learner": lambda a: confluent_loop(a, learn=True),
    "quix-learner": quix_learner,
    "quix-pair": quix_pair,
    "faust-learner": lambda a: asyncio.run(faust_agent(a)),
    "doa-custom": lambda a: doa_node(a, "custom"),
    "doa-custom-compiled": lambda a: doa_node(a, "custom", compiled=True),
    "doa-pair": lambda a: doa_node(a, "pair", nodes=a.only and a.only.split(",")),
    "doa-pair-compiled": lambda a: doa_node(a, "pair", compiled=True),
    "doa-pair-chained": lambda a: doa_node(a, "pair", chain=True),
    "doa-pair-unchained": lambda a: doa_node(a, "pair", chain=False),
    "doa-pair-split": doa_pair_split,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.peers_run")
    parser.add_argument("variant", choices=sorted(VARIANTS))
    parser.add_argument("--broker", required=True)
    parser.add_argument("--records", type=int, required=True, help="0: until terminated")
    parser.add_argument("--name", required=True)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--inputs", default="", metavar="PREFIX",
                        help="read PREFIXtxns (and PREFIXlabels) instead of txns (labels)")
    parser.add_argument("--linger-ms", type=int, help="every variant's producer linger")
    parser.add_argument("--fetch-max-wait-ms", type=int, help="every variant's fetch wait")
    parser.add_argument("--only", help="doa's variants: run only these nodes (comma-separated)")
    parser.add_argument("--mark", help="doa's variants: write the first batch's times here")
    a = parser.parse_args(argv)
    if not a.profile:
        print(json.dumps(VARIANTS[a.variant](a)), flush=True)
        return
    import cProfile
    import pstats

    profiler = base.PROFILER = cProfile.Profile()
    base.watch_gc()
    result = VARIANTS[a.variant](a)
    print(json.dumps(result), flush=True)
    print("cyclic GC, first batch to last: " + ", ".join(
        f"gen {g}: {base.GC_COUNT[g]} collections {base.GC_TIME[g] * 1e3:.0f} ms"
        f" ({base.GC_TIME[g] / result['records'] * 1e6:.1f} µs/record)" for g in range(3))
        + f"; {base.GC_FOUND[0]:,} objects found unreachable")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)
    if os.environ.get("PEERS_PROFILE_OUT"):  # the whole profile, for pstats / snakeviz
        profiler.dump_stats(os.environ["PEERS_PROFILE_OUT"])


if __name__ == "__main__":
    main()
