"""``doa model``: the versions of a learner or of a model node, and what an operator does
with them (publish, list, rollback, compare, promote).

A model node's versions are records of its versions stream (``doa.ModelArtifact``):
``publish`` cuts the artifact into chunks (sealed with the signing key when one is set) and
sends them to every partition; ``rollback`` and ``promote`` are commands on the same stream.
The node applies each at its place in the log and says so on its ``models`` stream.
"""

from __future__ import annotations

import time
from typing import Any

import click
from rich.table import Table

from doa.cli.console import out, tables
from doa.cli.model.publish import publish_cmd
from doa.cli.model.switch import promote_cmd, rollback_cmd
from doa.cli.model.versions import node_spec, reach, read_all
from doa.cli.options import broker_option
from doa.errors import DoaError


@click.command("list")
@click.argument("topology")
@click.argument("node")
@broker_option
def list_cmd(topology: str, node: str, broker: str | None) -> None:
    """List the versions of a model node (its first, the topology's model, too) and which is
    live, and the model events of a learner or model node."""
    address = reach(broker)
    t, spec = node_spec(topology, node)
    if spec.kind == "model":
        table = Table(title=f"versions of {node} ({spec.versions})")
        for col in ("version", "action", "candidate", "sha256", "format", "bytes", "publisher",
                    "when", "note"):
            table.add_column(col)
        table.add_row(str(spec.version), "topology", "False", "-", spec.format, "-", "-", "-",
                      f"the topology's model: {spec.source}")
        records = read_all(address, t, spec.versions)
        for e in records:
            if e.partition == 0 and e["chunk"] == 0:
                table.add_row(*_version_row(e))
        tables().print(table)
    events = [] if spec.models is None else read_all(address, t, spec.models)
    if spec.kind == "model":  # the versions stream and the policy's promotions, as the node
        from doa.model.kept import model_roles

        out.print(_live_line(spec, model_roles(records, spec.version, spec.keep,
                                               t.streams[spec.versions].partitions, events)))
    if spec.models is None:
        if spec.kind == "learner":
            raise DoaError(f"learner {node!r} declares no models= stream to list versions from")
        return
    table = Table(title=f"model events of {node} ({spec.models})")
    for col in ("partition", "version", "action", "from", "labels", "metric", "reason"):
        table.add_column(col)
    for e in events:
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
    for m in metrics:
        p = _metric_partition(m)
        for q, r in roles.items():
            if q == p or len(roles) == 1:
                r["metrics"][m["model_version"]] = m
    return roles


def _metric_partition(metric: Any) -> int | None:
    """The node's input partition a metric record was computed on: the partition of the
    label its lineage names (:func:`doa.lineage.log.input_partition`; labels are
    co-partitioned with the node's input), else the record's own partition (a metrics stream
    of fewer partitions than the input mixes them).

    >>> from doa.events import Coordinates, Event, Lineage, pack_lineage
    >>> lin = Lineage(b"i" * 16, "price", b"f" * 8, (b"p" * 16,), 2,
    ...               (Coordinates("fares", 1, 1448),))
    >>> m = Event({"model_version": 2}, stream="price.metrics", partition=0, offset=61,
    ...           timestamp=0, headers=(("doa", pack_lineage(lin)),))
    >>> _metric_partition(m), _metric_partition(Event({}, stream="price.metrics", partition=3,
    ...                                               offset=0, timestamp=0))
    (1, 3)
    """
    from doa.lineage.log import input_partition

    found = input_partition(getattr(metric, "lineage", None))
    if found is not None:
        return found
    partition = getattr(metric, "partition", None)
    return None if partition is None else int(partition)


@click.command("compare")
@click.argument("topology")
@click.argument("node")
@broker_option
def compare_cmd(topology: str, node: str, broker: str | None) -> None:
    """Show the live and candidate versions of a model node (or a learner and its
    challenger) side by side on the same labels."""
    address = reach(broker)
    t, spec = node_spec(topology, node)
    if spec.kind == "learner":
        if spec.models is None or spec.metrics is None:
            raise DoaError(f"learner {node!r}: compare needs its models= and metrics= streams")
        metrics, metric = spec.metrics, spec.metric_name
    elif spec.models is None or spec.labels is None or spec.labels.metrics is None:
        raise DoaError(f"model node {node!r}: compare needs its models= stream and labels= "
                       "with metrics= (Labels(..., metrics=...))")
    else:
        metrics, metric = spec.labels.metrics, type(spec.labels.metric).__name__
    roles = standing(read_all(address, t, spec.models), read_all(address, t, metrics))
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


@click.group("model", commands=[publish_cmd, list_cmd, rollback_cmd, promote_cmd, compare_cmd])
def model_cmd() -> None:
    """Model versions of learners and model nodes: publish, list, rollback, compare, promote."""
