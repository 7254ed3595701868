"""``doa compose`` (a docker-compose file for a topology) and ``doa deploy`` (prepare a broker:
topics and schemas, then exit; optionally publish the topology's demo source)."""

from __future__ import annotations

import shlex
import threading
import time
from pathlib import Path
from typing import Any

import click

from doa.cli.console import err, out, say
from doa.cli.options import Duration, broker_option, need_broker
from doa.errors import DoaError


@click.command("compose")
@click.argument("topology")
@click.option("--group", "group_specs", multiple=True, metavar="NAME=NODE[,NODE]",
              help="Run these nodes together in one service (repeatable); every other node "
                   "is a service of its own.")
@click.option("--out", "out_file", type=click.Path(dir_okay=False), default=None,
              help="Write the file here (default: print it).")
@click.option("--broker", default=None, metavar="HOST:PORT",
              help="Use this existing cluster: no kafka service.")
@click.option("--kafka-config", default=None, metavar="FILE",
              help="A client config file (TLS, SASL) to mount as DOA_KAFKA_CONFIG.")
@click.option("--demo-records", type=click.IntRange(min=1), default=20000, show_default=True,
              help="Records the source service publishes (when the topology has a demo "
                   "source).")
@click.option("--no-source", is_flag=True, help="No source service, even with a demo source.")
@click.option("--doa-wheel", default=None, metavar="FILE",
              help="In your own project: the doa wheel the image installs (default: the "
                   "running doa, built from the directory it was installed from).")
@click.option("--doa-requirement", default=None, metavar="SPEC",
              help="In your own project: a pip requirement the image installs doa from "
                   "(doa==0.2.0 from your index, doa @ git+https://...).")
def compose_cmd(topology: str, group_specs: tuple[str, ...], out_file: str | None,
                broker: str | None, kafka_config: str | None, demo_records: int,
                no_source: bool, doa_wheel: str | None, doa_requirement: str | None) -> None:
    """Write a docker-compose file for TOPOLOGY: Kafka, a one-shot prepare, one service per
    node group, and the demo source. Outside doa's own repository it also writes the images'
    Dockerfile.doa and puts doa into .doa/ (the folder it runs in is the build context)."""
    from doa.deploy.compose import Images, Options, compose_file, groups
    from doa.deploy.project import is_doa_source, prepare
    from doa.topology.loader import load

    module, t = load(topology)
    source = not no_source and callable(getattr(module, "demo_source", None))
    args = [f"--group {g}" for g in group_specs]
    args += [f"--broker {broker}"] if broker else []
    args += [f"--kafka-config {kafka_config}"] if kafka_config else []
    args += [f"--demo-records {demo_records}"] if source and demo_records != 20000 else []
    args += ["--no-source"] if no_source else []
    args += [f"--doa-wheel {doa_wheel}"] if doa_wheel else []
    args += [f"--doa-requirement {shlex.quote(doa_requirement)}"] if doa_requirement else []
    command = " ".join(["doa compose", topology, *args])
    images, path, notes = Images(), topology, ""
    node_groups = groups(t, group_specs)  # checked before anything is written
    if not is_doa_source(Path.cwd()):
        folder = Path(out_file).parent if out_file else Path.cwd()
        project, images, written, came = prepare(Path.cwd(), topology, module, t, folder,
                                                 command, doa_wheel, doa_requirement)
        path = project.topology
        notes = f"wrote {', '.join(written)} (doa {came.describe()})"
    elif doa_wheel or doa_requirement:
        raise DoaError("--doa-wheel and --doa-requirement are for your own project: doa's "
                       "own repository builds doa from its source (Dockerfile)")
    text = compose_file(t, path, node_groups,
                        Options(broker=broker, kafka_config=kafka_config,
                                demo_records=demo_records if source else None, images=images),
                        command=command)
    if notes:
        err.print(notes, soft_wrap=True)
    if out_file is None:
        click.echo(text, nl=False)
        return
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    Path(out_file).write_text(text)
    err.print(f"wrote {out_file}: docker compose -f {out_file} up --build")


@click.command("deploy")
@click.argument("topology")
@broker_option
@click.option("--wait", "wait_s", type=Duration(zero=True), default=60.0,
              show_default=True, metavar="DURATION",
              help="Wait this long (seconds, or 30s, 1m) for a broker that refuses "
                   "connections (one starting) to listen; anything else that does not answer "
                   "fails at once.")
@click.option("--publish-demo", type=click.IntRange(min=1), default=None, metavar="N",
              help="Then publish N records of the topology's demo source (paced by their "
                   "timestamps) and exit.")
def deploy_cmd(topology: str, broker: str | None, wait_s: float,
               publish_demo: int | None) -> None:
    """Prepare a broker for TOPOLOGY and exit: check it, create its topics, register its
    schemas (refusing an incompatible change, and a version that nodes running on the broker
    cannot read). Idempotent: run it before the nodes start."""
    from doa.engines.launch import prepare
    from doa.topology.loader import load

    address = need_broker(broker)
    wait_for_broker(address, wait_s)
    module, t = load(topology)
    # refuses what running processes could not read; says what they would not see
    registered = prepare(t, address, say=say)
    out.print(f"topology {t.name!r} ready on {address}: {len(t.streams)} streams, "
              f"{len(registered)} new schema version{'s' if len(registered) != 1 else ''}")
    if publish_demo is not None:
        published = publish(module, address, publish_demo)
        out.print("published " + ", ".join(f"{n} to {s}" for s, n in published.items()))


def wait_for_broker(address: str, wait_s: float) -> None:
    """Return once ``address`` answers; while it refuses connections (a broker starting), say
    so at once and wait up to ``wait_s``; anything else that does not answer (no answer, a
    server that is not Kafka, an unknown host) is its one-line error at once.

    >>> from doa.cluster.reach import BrokerUnreachable
    >>> try:
    ...     wait_for_broker("127.0.0.1:1", 0.6)
    ... except BrokerUnreachable as exc:
    ...     print(exc.reason)
    connection refused for 0.6 s of --wait
    """
    from doa.cluster.reach import BrokerUnreachable, check_reachable

    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            check_reachable(address, timeout_s=3.0)
            return
        except BrokerUnreachable as exc:
            if not exc.refused or time.monotonic() >= deadline:
                if said:
                    raise BrokerUnreachable(address, f"{exc.reason} for {wait_s:g} s of "
                                                     "--wait", refused=True) from None
                raise
            if not said:
                err.print(f"broker {address}: {exc.reason}; waiting up to {wait_s:g} s for "
                          "it to listen (--wait 0: not at all)")
                said = True
        time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))


class _Counter:
    """What :func:`doa.demo.replay.replay` reports progress into (``.value``)."""

    def __init__(self) -> None:
        self.value = 0


def publish(module: Any, address: str, n: int) -> dict[str, int]:
    """Publish ``n`` records of ``module.demo_source`` (paced as ``doa demo`` does)."""
    from doa.demo.replay import LEAD_MS, replay

    if not callable(getattr(module, "demo_source", None)):
        raise DoaError(f"{module.__name__} defines no demo_source(n, seed) to publish from")
    items = list(module.demo_source(n, 7))
    ready = threading.Event()
    ready.set()  # the nodes run in other processes: do not wait for them
    return replay(address, items, lead_ms=LEAD_MS, ready=ready, stop=threading.Event(),
                  sent=_Counter(), waiting=_Counter())
