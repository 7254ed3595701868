"""``doa model``: the versions of a learner or of a model node, and what an operator does
with them (publish, list, rollback, compare, promote).

A model node's versions are records of its versions stream (``doa.ModelArtifact``):
``publish`` cuts the artifact into chunks (sealed with the signing key when one is set) and
sends them to every partition; ``rollback`` and ``promote`` are commands on the same stream.
The node applies each at its place in the log and says so on its ``models`` stream.
"""

from __future__ import annotations

import getpass
import socket
import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from doa.cli.console import err, out, tables
from doa.cli.options import broker_option, need_broker
from doa.errors import DoaError
from doa.model.kept import learner_kept, model_candidates, model_kept, model_roles


def _node(topology: str, node: str, kinds: tuple[str, ...] = ("learner", "model")
          ) -> tuple[Any, Any]:
    from doa.topology.loader import load_topology

    t = load_topology(topology)
    n = t.nodes.get(node)
    if n is None or n.kind not in kinds:
        names = [x.name for x in t.nodes.values() if x.kind in kinds]
        raise DoaError(f"topology {t.name!r} has no {' or '.join(kinds)} node {node!r} "
                       f"({', '.join(names) or 'none'})")
    if n.kind == "model" and getattr(n.spec, "versions", None) is None:
        raise DoaError(f"model node {node!r} declares no versions stream (versions=None)")
    return t, n.spec


def _reach(broker: str | None) -> str:
    from doa.cluster.reach import check_reachable

    address = need_broker(broker)
    check_reachable(address, timeout_s=4.0)  # before the topology's imports
    return address


def _read(address: str, t: Any, stream: str) -> list[Any]:
    from doa.client import Subscriber

    with Subscriber([stream], broker=address, topology=t, from_beginning=True,
                    idle_timeout_s=2) as sub:
        return list(sub)


def _send(address: str, t: Any, stream: str, records: list[dict[str, Any]],
          timestamp_ms: int | None) -> None:
    from doa.client import Publisher

    with Publisher(stream, broker=address, topology=t, name="doa-model") as pub:
        for p in range(t.streams[stream].partitions):
            for record in records:
                pub.send(record, partition=p, timestamp_ms=timestamp_ms)


def _stamp() -> dict[str, Any]:
    """Who sends a versions record (user@host) and when (wall-clock ms)."""
    return {"publisher": f"{getpass.getuser()}@{socket.gethostname()}",
            "published": time.time_ns() // 1_000_000}


def publish_version(t: Any, node: str, path: str | Path, *, broker: str, note: str = "",
                    candidate: bool = False, chunk_bytes: int | None = None,
                    metadata: dict[str, str] | None = None,
                    timestamp_ms: int | None = None) -> tuple[int, list[int]]:
    """Publish the model file ``path`` as the next version of model node ``node``; its
    number, and the candidate versions it replaces (a candidate only: one runs at a time).
    The file is loaded here first, so a file the node could not load (an unknown
    extension, bytes that do not load, another number of input features than the node
    declares) is refused and nothing is sent."""
    from doa.cluster.signing import signing_key
    from doa.model.artifacts import CHUNK_BYTES, chunk_records, load_bytes
    from doa.model.formats import ModelLoadError, file_format

    spec = t.nodes[node].spec
    try:
        fmt = file_format(path, node=node)
        data = Path(path).read_bytes()
        records = _read(broker, t, spec.versions)
        known = [e["version"] for e in records if e["action"] == "publish"]
        version = int(max([spec.version, *known])) + 1
        load_bytes(data, fmt, node=node, version=version, features=spec.features,
                   classes=spec.classes, source=str(path))
    except ModelLoadError as exc:
        raise ModelLoadError(f"{exc}; nothing sent") from None
    replaced: list[int] = []
    if candidate and any(r["candidate"] for r in records):
        events = [] if spec.models is None else _read(broker, t, spec.models)
        replaced = sorted(set(model_candidates(records, events, spec.version, spec.keep,
                                               t.streams[spec.versions].partitions).values()))
    chunks = chunk_records(node, version, data, fmt=fmt, chunk_bytes=chunk_bytes or CHUNK_BYTES,
                           key=signing_key(), note=note, candidate=candidate,
                           metadata=metadata, **_stamp())
    _send(broker, t, spec.versions, chunks, timestamp_ms)
    return version, replaced


@click.group("model")
def model_cmd() -> None:
    """Model versions of learners and model nodes: publish, list, rollback, compare, promote."""


@model_cmd.command("publish")
@click.argument("topology")
@click.argument("node")
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--note", default="", help="Why this version; kept with it.")
@click.option("--candidate", is_flag=True,
              help="Run it beside the live version (its predictions go to the shadow stream).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata kept with it.")
@click.option("--chunk-bytes", type=int, default=None, help="Bytes per record (512 KiB).")
@broker_option
def publish_cmd(topology: str, node: str, file: str, note: str, candidate: bool,
                meta: tuple[str, ...], chunk_bytes: int | None, broker: str | None) -> None:
    """Publish FILE (.onnx, .joblib, .pkl) as the next version of model node NODE."""
    address = _reach(broker)
    t, spec = _node(topology, node)
    if spec.kind == "learner":
        raise DoaError(f"learner {node!r} learns its versions; its challenger is declared in "
                       "the topology: topology.learner(..., challenger=MODEL, shadow=STREAM, "
                       "promote_when=doa.Promote(...))")
    if candidate and spec.shadow is None and spec.labels is None:
        raise DoaError(f"model node {node!r} declares neither shadow= nor labels=: a "
                       "candidate's predictions would go nowhere")
    metadata = dict(m.split("=", 1) for m in meta if "=" in m)
    version, replaced = publish_version(t, node, file, broker=address, note=note,
                                        candidate=candidate, chunk_bytes=chunk_bytes,
                                        metadata=metadata)
    role = "candidate" if candidate else "live version"
    replacing = "".join(f", replacing candidate version {v}" for v in replaced)
    out.print(f"published {file} as version {version} of {node} ({role}) on "
              f"{spec.versions}{replacing}; see `doa model list`")


@model_cmd.command("list")
@click.argument("topology")
@click.argument("node")
@broker_option
def list_cmd(topology: str, node: str, broker: str | None) -> None:
    """List the versions of a model node (its first, the topology's model, too) and which is
    live, and the model events of a learner or model node."""
    address = _reach(broker)
    t, spec = _node(topology, node)
    if spec.kind == "model":
        table = Table(title=f"versions of {node} ({spec.versions})")
        for col in ("version", "action", "candidate", "sha256", "format", "bytes", "publisher",
                    "when", "note"):
            table.add_column(col)
        table.add_row(str(spec.version), "topology", "False", "-", spec.format, "-", "-", "-",
                      f"the topology's model: {spec.source}")
        records = _read(address, t, spec.versions)
        for e in records:
            if e.partition == 0 and e["chunk"] == 0:
                table.add_row(*_version_row(e))
        tables().print(table)
        out.print(_live_line(spec, model_roles(records, spec.version, spec.keep,
                                               t.streams[spec.versions].partitions)))
    if spec.models is None:
        if spec.kind == "learner":
            raise DoaError(f"learner {node!r} declares no models= stream to list versions from")
        return
    table = Table(title=f"model events of {node} ({spec.models})")
    for col in ("partition", "version", "action", "from", "labels", "metric", "reason"):
        table.add_column(col)
    for e in _read(address, t, spec.models):
        metric = "-" if e["metric"] is None else f"{e['metric']:.4f}"
        table.add_row(str(e["partition"]), str(e["version"]), e["action"],
                      str(e["from_version"]), str(e["labels"]), metric, e["reason"])
    tables().print(table)


def _version_row(e: Any) -> tuple[str, ...]:
    """A versions record as a row of ``doa model list`` ('-' for what it does not say: the
    version a promote makes live is the candidate's, on the models stream).

    >>> _version_row({"version": 0, "action": "promote", "candidate": False, "sha256": "",
    ...               "format": "", "size": 0, "publisher": "ann@host",
    ...               "published": 1700000000000, "note": "", "reason": "better"})
    ('-', 'promote', 'False', '', '', '', 'ann@host', '2023-11-14 22:13:20Z', 'better')
    """
    ms = e["published"]
    when = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ms / 1000)) if ms else "-"
    version = "-" if e["action"] == "promote" and not e["version"] else str(e["version"])
    return (version, e["action"], str(e["candidate"]), e["sha256"][:12], e["format"],
            str(e["size"] or ""), e["publisher"] or "-", when, e["note"] or e["reason"])


def _live_line(spec: Any, roles: dict[int, dict[str, Any]]) -> str:
    """Which version is live (and which is the candidate), on every partition or on each.

    >>> from types import SimpleNamespace
    >>> spec = SimpleNamespace(version=1, source="models/lin.joblib")
    >>> _live_line(spec, {0: {"live": 1, "candidate": None}, 1: {"live": 1, "candidate": None}})
    "live: version 1 (the topology's model, models/lin.joblib); no candidate"
    >>> _live_line(spec, {0: {"live": 2, "candidate": 3}, 1: {"live": 1, "candidate": None}})
    'live: version 2 on partition 0, version 1 on partition 1; candidate: version 3 on partition 0'
    """
    def named(v: int) -> str:
        return f"version {v}" + (f" (the topology's model, {spec.source})"
                                 if v == spec.version else "")

    def where(role: str) -> str:
        found = {p: r[role] for p, r in roles.items() if r[role] is not None}
        if len(set(found.values())) == 1 and len(found) == len(roles):
            return named(next(iter(found.values())))
        return ", ".join(f"version {v} on partition {p}" for p, v in found.items())

    return f"live: {where('live')}; " + (f"candidate: {where('candidate')}"
                                         if where("candidate") else "no candidate")


@model_cmd.command("rollback")
@click.argument("topology")
@click.argument("node")
@click.argument("version", type=int)
@click.option("--reason", default="", help="Why; it is written on the model events.")
@broker_option
def rollback_cmd(topology: str, node: str, version: int, reason: str,
                 broker: str | None) -> None:
    """Make a learner or model node go back to VERSION (on every partition)."""
    address = _reach(broker)
    t, spec = _node(topology, node)
    reason = reason or f"doa model rollback to {version}"
    if spec.kind == "model":
        from doa.model.versions import command

        stream = spec.versions
        kept = model_kept(_read(address, t, stream), spec.version, spec.keep,
                          t.streams[stream].partitions)
        _refuse(f"model node {node!r}", version, kept)
        _send(address, t, stream, [command(node, "rollback", version, reason, **_stamp())],
              None)
    else:
        if spec.control is None:
            raise DoaError(f"learner {node!r} declares no control= stream to send commands on")
        stream = spec.control
        if spec.models is None:
            err.print(f"[yellow]warning[/yellow]: learner {node!r} declares no models= stream: "
                      f"version {version} is not checked before it is sent")
        else:
            events = _read(address, t, spec.models)
            if not events:
                raise DoaError(f"learner {node!r} has made no versions yet (no model events on "
                               f"{spec.models!r}; has it run?); nothing sent")
            _refuse(f"learner {node!r}", version, learner_kept(
                events, spec.keep_versions, t.streams[stream].partitions))
        _send(address, t, stream, [{"command": "rollback", "version": version,
                                    "reason": reason}], None)
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


@model_cmd.command("promote")
@click.argument("topology")
@click.argument("node")
@click.option("--reason", default="", help="Why; it is written on the model events.")
@broker_option
def promote_cmd(topology: str, node: str, reason: str, broker: str | None) -> None:
    """Make a model node's candidate version, or a learner's challenger, live (on every
    partition)."""
    from doa.model.versions import command

    address = _reach(broker)
    t, spec = _node(topology, node)
    if spec.kind == "model":
        partitions = t.streams[spec.versions].partitions
        roles = model_roles(_read(address, t, spec.versions), spec.version, spec.keep,
                            partitions)
        running = {p: r["candidate"] for p, r in roles.items()}
        ended = [] if spec.models is None else _read(address, t, spec.models)
        _refuse_promote(f"model node {node!r}", "candidate", running, ended,
                        "publish one with `doa model publish --candidate`")
        _send(address, t, spec.versions, [command(node, "promote", 0, reason, **_stamp())],
              None)
    elif spec.control is None:
        raise DoaError(f"learner {node!r} declares no control= stream to send commands on")
    elif spec.challenger is None:
        raise DoaError(f"learner {node!r} has no challenger to promote (declare one: "
                       "topology.learner(..., challenger=MODEL, shadow=STREAM)); nothing sent")
    else:  # a challenger runs from the start until it is promoted or rejected
        ended = [] if spec.models is None else _read(address, t, spec.models)
        running = {p: -1 for p in range(t.streams[spec.control].partitions)}
        _refuse_promote(f"learner {node!r}", "challenger", running, ended,
                        "it was promoted or rejected")
        _send(address, t, spec.control, [{"command": "promote", "version": 0,
                                          "reason": reason or "doa model promote"}], None)
    out.print(f"asked {node} to promote its candidate; see `doa model list` for the result")


def standing(events: list[Any], metrics: list[Any]) -> dict[int, dict[str, Any]]:
    """Per input partition: the live and candidate versions (from the model events) and
    each one's latest metric record.

    >>> from doa.events import Event
    >>> def ev(action, v, was=1): return Event(
    ...     {"action": action, "version": v, "from_version": was, "partition": 0},
    ...     stream="e", partition=0, offset=0, timestamp=0)
    >>> r = standing([ev("created", 2), ev("candidate", 3, was=2)], [])[0]
    >>> r["live"], r["candidate"]
    (2, 3)
    """
    roles: dict[int, dict[str, Any]] = {}
    for e in events:
        r = roles.setdefault(e["partition"], {"live": None, "candidate": None, "metrics": {}})
        action, v = e["action"], e["version"]
        if action == "candidate":
            r["candidate"] = v
            r["live"] = e["from_version"]  # the version it races
        elif action == "rejected":
            r["candidate"] = None
        elif action in ("created", "rollback", "promoted", "reset"):
            r["live"] = v
            if r["candidate"] == v or action == "promoted":
                r["candidate"] = None
    for m in metrics:  # unkeyed: on the input's partition when the streams have as many
        for p, r in roles.items():
            if p == getattr(m, "partition", p) or len(roles) == 1:
                r["metrics"][m["model_version"]] = m
    return roles


@model_cmd.command("compare")
@click.argument("topology")
@click.argument("node")
@broker_option
def compare_cmd(topology: str, node: str, broker: str | None) -> None:
    """Show the live and candidate versions of a model node (or a learner and its
    challenger) side by side on the same labels."""
    address = _reach(broker)
    t, spec = _node(topology, node)
    if spec.kind == "learner":
        if spec.models is None or spec.metrics is None:
            raise DoaError(f"learner {node!r}: compare needs its models= and metrics= streams")
        metrics, metric = spec.metrics, spec.metric_name
    elif spec.models is None or spec.labels is None or spec.labels.metrics is None:
        raise DoaError(f"model node {node!r}: compare needs its models= stream and labels= "
                       "with metrics= (Labels(..., metrics=...))")
    else:
        metrics, metric = spec.labels.metrics, type(spec.labels.metric).__name__
    roles = standing(_read(address, t, spec.models), _read(address, t, metrics))
    table = Table(title=f"{node}: live and candidate on the same labels ({metric})")
    for col in ("partition", "role", "version", "labels", "metric"):
        table.add_column(col)
    for p, r in sorted(roles.items()):
        for role in ("live", "candidate"):
            v = r[role]
            if v is None and role == "candidate":
                continue
            m = r["metrics"].get(v)
            table.add_row(str(p), role, "-" if v is None else str(v),
                          "-" if m is None else str(m["labels"]),
                          "-" if m is None else f"{m['value']:.4f}")
    if not any(r["candidate"] is not None for r in roles.values()):
        table.caption = ("no candidate runs: " + ("a learner's challenger= runs beside it"
                         if spec.kind == "learner" else "doa model publish --candidate"))
    tables().print(table)
