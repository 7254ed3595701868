"""``doa model list`` and ``doa model rollback``: a learner's versions, and going back to one."""

from __future__ import annotations

from typing import Any

import click
from rich.table import Table

from doa.cli.console import out
from doa.cli.streams import broker_option, need_broker
from doa.errors import DoaError


def _learner(topology: str, node: str) -> tuple[Any, Any]:
    from doa.topology.loader import load_topology

    t = load_topology(topology)
    n = t.nodes.get(node)
    if n is None or n.kind != "learner":
        learners = [x.name for x in t.nodes.values() if x.kind == "learner"]
        raise DoaError(f"topology {t.name!r} has no learner {node!r} "
                       f"(learners: {', '.join(learners) or 'none'})")
    return t, n.spec


@click.group("model")
def model_cmd() -> None:
    """A learner's model versions."""


@model_cmd.command("list")
@click.argument("topology")
@click.argument("node")
@broker_option
def list_cmd(topology: str, node: str, broker: str | None) -> None:
    """List the model events (versions created, rollbacks, resets) of a learner."""
    from doa.client import Subscriber
    from doa.cluster.reach import check_reachable

    check_reachable(need_broker(broker), timeout_s=4.0)  # before the topology's imports
    t, spec = _learner(topology, node)
    if spec.models is None:
        raise DoaError(f"learner {node!r} declares no models= stream to list versions from")
    table = Table(title=f"model versions of {node} ({spec.models})")
    for col in ("partition", "version", "action", "from", "labels", "metric", "reason"):
        table.add_column(col)
    with Subscriber([spec.models], broker=need_broker(broker), topology=t,
                    from_beginning=True, idle_timeout_s=2) as sub:
        for e in sub:
            metric = "-" if e["metric"] is None else f"{e['metric']:.4f}"
            table.add_row(str(e["partition"]), str(e["version"]), e["action"],
                          str(e["from_version"]), str(e["labels"]), metric, e["reason"])
    out.print(table)


@model_cmd.command("rollback")
@click.argument("topology")
@click.argument("node")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Why; it is written on the model events.")
@broker_option
def rollback_cmd(topology: str, node: str, version: int, reason: str,
                 broker: str | None) -> None:
    """Make a learner load VERSION (on every partition) and continue from it."""
    from doa.client import Publisher
    from doa.cluster.reach import check_reachable

    check_reachable(need_broker(broker), timeout_s=4.0)  # before the topology's imports
    t, spec = _learner(topology, node)
    if spec.control is None:
        raise DoaError(f"learner {node!r} declares no control= stream to send commands on")
    partitions = t.streams[spec.control].partitions
    with Publisher(spec.control, broker=need_broker(broker), topology=t,
                   name="doa-model") as pub:
        for p in range(partitions):
            pub.send({"command": "rollback", "version": version,
                      "reason": reason or f"doa model rollback to {version}"}, partition=p)
    out.print(f"asked {node} to roll back to version {version} on {partitions} partition(s); "
              f"see `doa model list` for the result")
