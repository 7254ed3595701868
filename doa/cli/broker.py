"""``doa broker``: a broker in the foreground for other processes (the embedded tansu, or a
local Apache Kafka)."""

from __future__ import annotations

import time

import click

from doa.cli.console import err
from doa.errors import DoaError


@click.command("broker")
@click.option("--port", type=int, default=9092, show_default=True,
              help="The client port (with --kafka: of the first node).")
@click.option("--kafka", "kafka", is_flag=True,
              help="Run Apache Kafka (KRaft; needs Java 17+, and Maven on first use) "
                   "instead of the embedded in-memory broker.")
@click.option("--brokers", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --kafka: how many nodes (each broker and controller).")
@click.option("--kafka-version", default=None, metavar="VERSION",
              help="With --kafka: the Apache Kafka release (default: $DOA_KAFKA_VERSION or "
                   "doa's).")
@click.option("--listen", default="127.0.0.1", show_default=True, metavar="HOST",
              help="With --kafka: the interface clients connect on (0.0.0.0 in a container).")
@click.option("--advertise", default=None, metavar="HOST[:PORT]",
              help="With --kafka: the address clients are told to use (e.g. kafka:9092 in a "
                   "compose network).")
@click.option("--data", default=None, metavar="DIR",
              type=click.Path(file_okay=False, writable=True),
              help="With --kafka: keep the nodes' logs in DIR across stops and starts "
                   "(default: a temporary directory, deleted when the broker stops).")
def broker_cmd(port: int, kafka: bool, brokers: int, kafka_version: str | None, listen: str,
               advertise: str | None, data: str | None) -> None:
    """Run a broker in the foreground for other processes: the embedded one (tansu, in
    memory), or with --kafka a local Apache Kafka (for tests and local realism, not for
    production)."""
    import contextlib
    import signal

    from doa.local.embedded import EmbeddedBroker

    if not kafka and (brokers != 1 or kafka_version or advertise or data
                      or listen != "127.0.0.1"):
        raise DoaError("--brokers, --kafka-version, --listen, --advertise and --data need "
                       "--kafka")
    stop: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    if kafka:
        from doa.local import apache_kafka as kafka_local

        version = kafka_local.kafka_version(kafka_version)
        if not (kafka_local.cache_root() / version / "complete").exists():
            err.print(f"assembling Apache Kafka {version} into "
                      f"{kafka_local.cache_root() / version} (first use: Maven downloads "
                      "its jars, ~45 MB)")
        server = kafka_local.LocalKafka(brokers, port=port, version=version, listen=listen,
                                        advertise=advertise, data=data)
        with server:
            address = advertise if advertise and ":" in advertise else server.address
            kept = (f"data in {server.home}: deleted when it stops" if data is None else
                    f"data in {data}: kept when it stops")
            err.print(f"Apache Kafka {version} (KRaft, {brokers} node"
                      f"{'s' if brokers > 1 else ''}) on {address}, up in "
                      f"{server.started_in:.1f} s ({kept}); export DOA_BROKER={address}")
            with contextlib.suppress(KeyboardInterrupt):
                while not stop and server.alive():
                    time.sleep(0.2)
            failed = None if stop else server.exited()
            if failed:
                raise DoaError(failed)
        err.print("broker stopped")
        return
    with EmbeddedBroker(port=port) as b:
        err.print(f"embedded broker on {b.address} (in memory: data is lost when it stops); "
                  f"export DOA_BROKER={b.address}")
        try:
            while not stop and b.process is not None and b.process.poll() is None:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        code = None if stop or b.process is None else b.process.poll()
    if code is not None:
        raise DoaError(f"the embedded broker on {b.address} exited by itself (exit code {code})")
    err.print("broker stopped")
