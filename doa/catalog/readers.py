"""A schema version that nodes still running cannot read: refused before it is registered.

A running node reads a version registered after it started by resolving it into its own
schema (:func:`doa.cluster.registry.reread`): that works for a change its schema can read,
a field added with a default say, and for nothing else. The walkthrough's case: ``hour`` went
from ``int`` to ``double`` (BACKWARD compatible: new readers read old data; not FORWARD: old
readers cannot read new data). ``doa deploy`` registered it while the ``int`` node ran,
``doa publish`` wrote with it, and the node dead-lettered all 1,501 records.

So ``doa deploy`` (and ``doa run``, ``doa check --broker``) reads which processes run on the
broker and what they read, with which schema (their descriptions and heartbeats on
``_doa_topologies``, :func:`doa.catalog.read.read_topologies`), and refuses a topology whose
schema of a stream one of them reads cannot be read with that reader's schema
(:func:`doa.wire.explain.unreadable`), one line per stream and node, before anything is created
or registered. Refused rather than warned: the deploy has nothing to lose by waiting, while the
records written meanwhile would all be dead letters; the way out is to stop the readers first
(then deploy, and run them with the new schema) or to make the change one they can read. A
stream declared ``compatibility="NONE"`` is not checked (it asked for no checks). A process
counts while its heartbeats say it is alive (:func:`doa.catalog.collect.processes`); a broker
whose ``_doa_topologies`` cannot be read is a warning in the log, as for foreign writers.

Examples
--------
>>> import json
>>> from tempfile import TemporaryDirectory
>>> from pathlib import Path
>>> from doa import Topology
>>> tmp = TemporaryDirectory()
>>> def ride(hour, *more):
...     schema = {"type": "record", "name": "RideRequest", "namespace": "rides", "fields": [
...         {"name": "ride_id", "type": "string"}, {"name": "hour", "type": hour}, *more]}
...     (Path(tmp.name) / "ride.avsc").write_text(json.dumps(schema))
...     t = Topology("pricing", schemas=tmp.name)
...     _ = t.stream("ride_requests", schema="rides.RideRequest", key="ride_id")
...     return t
>>> v2 = ride("int")
>>> running = [Reader("ride_requests", "pricing", "price", ("pricing/h1/42",),
...                   v2.codec("ride_requests").schema.json)]
>>> for line in unreadable_by(ride("double"), running):
...     print(line)  # doctest: +NORMALIZE_WHITESPACE
stream 'ride_requests': node 'price' of topology 'pricing' (running: pricing/h1/42) reads it
with a schema that cannot read this version: field RideRequest.hour: the writer's double cannot
be read as the reader's int; stop that node first (then deploy, and run it with this schema),
or make the change one it can read (a new field with a default, not a new type for an old one)
>>> unreadable_by(ride("int", {"name": "tip", "type": "double", "default": 0.0}), running)
[]
>>> tmp.cleanup()
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from doa.catalog.collect import processes
from doa.catalog.read import BrokerView, read_topologies
from doa.catalog.writers import foreign_commands, foreign_writers, others
from doa.errors import DoaError
from doa.topology.topology import Topology
from doa.wire.explain import unreadable
from doa.wire.schema import Schema

log = logging.getLogger(__name__)

__all__ = ["Reader", "readers", "refuse_running_problems", "running_problems", "unreadable_by",
           "unseen_fields"]


@dataclass(frozen=True)
class Reader:
    """A node that a running process runs, reading ``stream`` with ``schema`` (JSON).

    Parameters
    ----------
    stream : the stream read
    topology, node : the topology and node reading it
    processes : the process keys (``TOPOLOGY/HOST/PID``) running that node
    schema : the schema the node reads the stream with (its description's ``schema_json``)
    """

    stream: str
    topology: str
    node: str
    processes: tuple[str, ...]
    schema: Any


def readers(view: BrokerView) -> list[Reader]:
    """Every stream that a node of a live process in ``view`` reads, with the schema it reads
    it with (processes running one node with the same schema are one reader)."""
    described = view.described()
    found: dict[tuple[str, str, str, str], list[str]] = {}
    schemas: dict[str, Any] = {}
    for p in processes(view):
        if not p["alive"]:
            continue
        d = described.get(p["key"]) or {}
        streams = {s.get("name"): s for s in d.get("streams") or () if isinstance(s, dict)}
        for n in d.get("nodes") or ():
            if n.get("name") not in p["runs"]:
                continue
            for name in n.get("reads") or ():
                info = streams.get(name) or {}
                if "schema_json" not in info:
                    continue
                fingerprint = str(info.get("fingerprint"))
                schemas[fingerprint] = info["schema_json"]
                found.setdefault((name, str(d.get("topology")), str(n["name"]), fingerprint),
                                 []).append(str(p["key"]))
    return [Reader(stream, topology, node, tuple(keys), schemas[fingerprint])
            for (stream, topology, node, fingerprint), keys in found.items()]


def unreadable_by(topology: Topology, running: Iterable[Reader]) -> list[str]:
    """One line per stream of ``topology`` and reader in ``running`` whose schema cannot read
    ``topology``'s version of the stream (streams of level NONE left out)."""
    out = []
    for reader, new, theirs in _other_schemas(topology, running):
        if str(topology.streams[reader.stream].compatibility).upper() == "NONE":
            continue
        found = unreadable(new.json, theirs.json, theirs.name)
        if not found:
            continue
        why = "; ".join(f"field {path}: {text}" for path, text in found)
        out.append(f"stream {reader.stream!r}: node {reader.node!r} of topology "
                   f"{reader.topology!r} (running: {', '.join(reader.processes)}) reads it "
                   f"with a schema that cannot read this version: {why}; stop that node "
                   "first (then deploy, and run it with this schema), or make the change one "
                   "it can read (a new field with a default, not a new type for an old one)")
    return out


def running_problems(topology: Topology, address: str, timeout_s: float = 5.0) -> list[str]:
    """What the processes described on ``address`` refuse of ``topology`` (one read of
    ``_doa_topologies``): streams another topology's nodes write too
    (:func:`doa.catalog.writers.foreign_writers`), and versions a running node cannot read
    (:func:`unreadable_by`). None, with a warning in the log, if it cannot be read (a
    :class:`~doa.errors.DoaError` of the read, e.g. credentials refused, is raised)."""
    view = _described(address, timeout_s)
    return [] if view is None else _problems(topology, view)


def _described(address: str, timeout_s: float) -> BrokerView | None:
    try:
        view = read_topologies(address, timeout_s=timeout_s)
    except DoaError:
        raise  # doa's own one line (credentials refused, broker unreachable): nothing would run
    except Exception as exc:
        log.warning("could not read the processes described on %s (%s: %s): streams another "
                    "topology writes too, and whether running nodes can read the new schemas, "
                    "are not checked", address, type(exc).__name__, exc)
        return None
    for warning in view.warnings:
        log.warning("reading the processes described on %s: %s", address, warning)
    return view


def _problems(topology: Topology, view: BrokerView) -> list[str]:
    described = others(view, topology.name)
    return [*foreign_writers(topology, described, view.broker, view.now_ms),
            *foreign_commands(topology, described, view.broker, view.now_ms),
            *unreadable_by(topology, readers(view))]


def refuse_running_problems(topology: Topology, address: str,
                            runs: Sequence[str] = ()) -> list[str]:
    """Raise a :class:`doa.errors.DoaError`, one line per problem, if the processes running on
    ``address`` refuse ``topology`` (:func:`running_problems`); else the warnings of the same
    read: live processes of the nodes ``runs`` that run other step code
    (:func:`other_code`)."""
    view = _described(address, 5.0)
    if view is None:
        return []
    found = _problems(topology, view)
    if found:
        raise DoaError("\n".join(found))
    return [*other_code(topology, runs, view), *unseen_fields(topology, readers(view))]


def unseen_fields(topology: Topology, running: Iterable[Reader]) -> list[str]:
    """One ``warning:`` line per stream of ``topology`` and reader in ``running`` whose
    schema reads ``topology``'s version of the stream without some of its fields: the node
    resolves the new records into its own schema, so it does not see them (nor pass them on)
    until it is restarted (walk 6: 644 values of a new field never reached the features).

    Examples
    --------
    >>> import json
    >>> from tempfile import TemporaryDirectory
    >>> from pathlib import Path
    >>> from doa import Topology
    >>> tmp = TemporaryDirectory()
    >>> def txn(*more):
    ...     schema = {"type": "record", "name": "Txn", "namespace": "cards", "fields": [
    ...         {"name": "id", "type": "long"}, *more]}
    ...     (Path(tmp.name) / "txn.avsc").write_text(json.dumps(schema))
    ...     t = Topology("cards", schemas=tmp.name)
    ...     _ = t.stream("txns", schema="cards.Txn", key="id")
    ...     return t
    >>> running = [Reader("txns", "cards", "featurize", ("cards/vm/42",),
    ...                   txn().codec("txns").schema.json)]
    >>> channel = {"name": "channel", "type": ["null", "string"], "default": None}
    >>> print(*unseen_fields(txn(channel), running))  # doctest: +NORMALIZE_WHITESPACE
    warning: stream 'txns': node 'featurize' of topology 'cards' (running: cards/vm/42) reads
    it with a schema without field 'channel': it will not see that field (nor pass it on)
    until it is restarted
    >>> unseen_fields(txn(), running)
    []
    >>> tmp.cleanup()
    """
    out = []
    for reader, new, theirs in _other_schemas(topology, running):
        if not isinstance(theirs.json, dict) or not isinstance(new.json, dict):
            continue
        known = {f.get("name") for f in theirs.json.get("fields") or ()}
        missing = [str(f.get("name")) for f in new.json.get("fields") or ()
                   if f.get("name") not in known]
        if missing:
            names = ", ".join(repr(m) for m in missing)
            out.append(f"warning: stream {reader.stream!r}: node {reader.node!r} of topology "
                       f"{reader.topology!r} (running: {', '.join(reader.processes)}) reads it "
                       f"with a schema without field{'s' if len(missing) > 1 else ''} {names}: "
                       f"it will not see {'them' if len(missing) > 1 else 'that field'} (nor "
                       f"pass {'them' if len(missing) > 1 else 'it'} on) until it is restarted")
    return out


def _other_schemas(topology: Topology, running: Iterable[Reader]
                   ) -> Iterator[tuple[Reader, Schema, Schema]]:
    """(reader, ``topology``'s schema, the reader's) for each reader in ``running`` of a
    stream of ``topology`` that reads it with another schema (one doa can parse)."""
    for reader in running:
        if reader.stream not in topology.streams:
            continue
        new = topology.codec(reader.stream).schema
        try:
            theirs = Schema.from_json(reader.schema)
        except Exception:  # a description doa cannot parse: nothing to compare with
            continue
        if theirs.fingerprint != new.fingerprint:
            yield reader, new, theirs


def other_code(topology: Topology, runs: Iterable[str], view: BrokerView) -> list[str]:
    """One ``warning:`` line per node of ``runs`` that a live process described in ``view``
    runs with other step code than ``topology``'s (:func:`doa.catalog.describe.step_code`):
    both would take partitions of the node's group, each processing them with its own code.
    Not refused: a rolling upgrade runs two versions for a while.

    Examples
    --------
    >>> from doa import Topology
    >>> from doa.catalog.describe import describe_process, heartbeat
    >>> def walk(step):
    ...     t = Topology("walk")
    ...     _ = t.stream("a", schema="doa.Metric")
    ...     _ = t.node(reads="a", writes=[], name="calibrate")(step)
    ...     return t
    >>> def keep(state, batch):
    ...     return state, []
    >>> def copy(state, batch):
    ...     return state, []
    >>> def first(state, batch):
    ...     return state, batch[:1]
    >>> old = describe_process(walk(keep), ["calibrate"], "kafka", 5.0, host="h1", pid=7,
    ...                        now_ms=50_000)
    >>> view = BrokerView("b:9092", now_ms=52_000, descriptions={"walk/h1/7": old},
    ...                   heartbeats={"walk/h1/7": heartbeat(old, now_ms=51_000)})
    >>> print(*other_code(walk(first), ["calibrate"], view))  # doctest: +ELLIPSIS
    warning: node 'calibrate' of topology 'walk' runs other step code in live process h1:7 \
(step ...:1, code ...) than here (step ...:1, code ...): its group walk.calibrate gives each \
process its own partitions, and each processes them with its own code
    >>> other_code(walk(copy), ["calibrate"], view)  # keep's source, under another name
    []
    >>> elsewhere = describe_process(walk(keep), [], "kafka", 5.0, host="h2", pid=8,
    ...                              now_ms=50_000)  # describes the node, runs others
    >>> view = BrokerView("b:9092", now_ms=52_000, descriptions={"walk/h2/8": elsewhere},
    ...                   heartbeats={"walk/h2/8": heartbeat(elsewhere, now_ms=51_000)})
    >>> other_code(walk(first), ["calibrate"], view)
    []
    """
    from doa.catalog.describe import step_code

    out = []
    live = [p for p in processes(view) if p["alive"] and p["topology"] == topology.name]
    for name in runs:
        node = topology.nodes[name]
        mine = step_code(node.step)
        theirs = []
        for p in live:  # a process describes every node of its topology, runs its --nodes
            if name not in p["runs"]:
                continue
            code, where = p["codes"].get(name) or (None, None)
            if code and code != mine:
                theirs.append(f"{p['host']}:{p['pid']} (step {where or '?'}, code {code})")
        if theirs:
            out.append(f"warning: node {name!r} of topology {topology.name!r} runs other step "
                       f"code in live process{'es' if len(theirs) > 1 else ''} "
                       f"{', '.join(theirs)} than here (step {node.where}, code {mine}): its "
                       f"group {topology.name}.{name} gives each process its own partitions, "
                       "and each processes them with its own code")
    return out
