"""``doa model rollback`` and ``doa model promote``: commands on a model node's versions
stream, or on a learner's control stream, checked against what the node keeps and runs
(:mod:`doa.model.kept`) before anything is sent.
"""

from __future__ import annotations

from typing import Any

import click

from doa.cli.console import err, out
from doa.cli.model.versions import at_the_end, node_spec, reach, read_all, send_all, stamp
from doa.cli.options import broker_option
from doa.errors import DoaError

__all__ = ["promote_cmd", "rollback_cmd"]


@click.command("rollback")
@click.argument("topology")
@click.argument("node")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Why; it is written on the model events.")
@broker_option
def rollback_cmd(topology: str, node: str, version: int, reason: str,
                 broker: str | None) -> None:
    """Make a learner or model node go back to VERSION (on every partition)."""
    from doa.model.kept import learner_kept, model_kept

    address = reach(broker)
    t, spec = node_spec(topology, node)
    reason = reason or f"doa model rollback to {version}"
    if spec.kind == "model":
        from doa.model.versions import command

        stream = spec.versions
        kept = model_kept(read_all(address, t, stream), spec.version, spec.keep,
                          t.streams[stream].partitions)
        _refuse(f"model node {node!r}", version, kept)
        send_all(address, t, stream, [command(node, "rollback", version, reason, **stamp())],
                 at_the_end(address, t, spec, stream))
    else:
        if spec.control is None:
            raise DoaError(f"learner {node!r} declares no control= stream to send commands on")
        stream = spec.control
        if spec.models is None:
            err.print(f"[yellow]warning[/yellow]: learner {node!r} declares no models= stream: "
                      f"version {version} is not checked before it is sent")
        else:
            events = read_all(address, t, spec.models)
            if not events:
                raise DoaError(f"learner {node!r} has made no versions yet (no model events on "
                               f"{spec.models!r}; has it run?); nothing sent")
            _refuse(f"learner {node!r}", version, learner_kept(
                events, spec.keep_versions, t.streams[stream].partitions))
        send_all(address, t, stream, [{"command": "rollback", "version": version,
                                       "reason": reason}], at_the_end(address, t, spec, stream))
    out.print(f"asked {node} to roll back to version {version} on "
              f"{t.streams[stream].partitions} partition(s); see `doa model list` for the "
              "result")


def _refuse_promote(what: str, role: str, running: dict[int, int | None], events: list[Any],
                    why: str) -> None:
    """A one-line error when no partition runs a candidate (challenger) to promote: those
    in ``running`` (partition: its version, -1 for any) less those whose model ``events``
    show it promoted or rejected; a warning when only some partitions run one."""
    for e in events:
        v = running.get(e["partition"])
        if e["action"] in ("promoted", "rejected") and v is not None and v in (-1, e["version"]):
            running[e["partition"]] = None
    idle = sorted(p for p, v in running.items() if v is None)
    if len(idle) == len(running):
        raise DoaError(f"{what}: cannot promote, no {role} runs ({why}); nothing sent")
    if idle:
        err.print(f"[yellow]warning[/yellow]: {what}: no {role} runs on partition(s) "
                  f"{', '.join(map(str, idle))}; the command is refused there")


def _refuse(what: str, version: int, kept: dict[int, list[int]]) -> None:
    """A one-line error when ``version`` is not kept on every partition (nothing is sent)."""
    missing = sorted(p for p, versions in kept.items() if version not in versions)
    if not missing:
        return
    if len({tuple(v) for v in kept.values()}) == 1:
        where = f"kept versions are {kept[missing[0]]}"
    else:
        where = "kept versions are " + ", ".join(f"{kept[p]} on partition {p}"
                                                 for p in missing)
    raise DoaError(f"{what}: cannot roll back to version {version}: {where}; nothing sent")


@click.command("promote")
@click.argument("topology")
@click.argument("node")
@click.option("--reason", default="", help="Why; it is written on the model events.")
@broker_option
def promote_cmd(topology: str, node: str, reason: str, broker: str | None) -> None:
    """Make a model node's candidate version, or a learner's challenger, live (on every
    partition)."""
    from doa.model.kept import model_roles
    from doa.model.versions import command

    address = reach(broker)
    t, spec = node_spec(topology, node)
    if spec.kind == "model":
        partitions = t.streams[spec.versions].partitions
        roles = model_roles(read_all(address, t, spec.versions), spec.version, spec.keep,
                            partitions)
        running = {p: r["candidate"] for p, r in roles.items()}
        ended = [] if spec.models is None else read_all(address, t, spec.models)
        _refuse_promote(f"model node {node!r}", "candidate", running, ended,
                        "publish one with `doa model publish --candidate`")
        sent = stamp()  # each partition's record names the candidate it makes live
        send_all(address, t, spec.versions, {
            p: [command(node, "promote", v or 0, reason, **sent)] for p, v in running.items()},
            at_the_end(address, t, spec, spec.versions))
    elif spec.control is None:
        raise DoaError(f"learner {node!r} declares no control= stream to send commands on")
    elif spec.challenger is None:
        raise DoaError(f"learner {node!r} has no challenger to promote (declare one: "
                       "topology.learner(..., challenger=MODEL, shadow=STREAM)); nothing sent")
    else:  # a challenger runs from the start until it is promoted or rejected
        ended = [] if spec.models is None else read_all(address, t, spec.models)
        racing: dict[int, int | None] = dict.fromkeys(
            range(t.streams[spec.control].partitions), -1)
        for e in ended:  # a partition's challenger, as its candidate event names it
            if e["action"] == "candidate" and e["partition"] in racing:
                racing[e["partition"]] = e["version"]
        _refuse_promote(f"learner {node!r}", "challenger", racing, ended,
                        "it was promoted or rejected")
        send_all(address, t, spec.control, {  # 0: whichever runs (none announced yet)
            p: [{"command": "promote", "version": max(v or 0, 0),
                 "reason": reason or "doa model promote"}] for p, v in racing.items()},
            at_the_end(address, t, spec, spec.control))
    out.print(f"asked {node} to promote its candidate; see `doa model list` for the result")

