"""What a ``doa run`` process says about itself on ``_doa_topologies``: plain JSON records.

Two kinds of record, both JSON objects, both keyed by the process
(``TOPOLOGY/HOST/PID``, :func:`process_key`), so that on a compacted topic each process keeps
its latest description and its latest heartbeat:

- a **description** (partition :data:`DESCRIPTIONS`), written when the process starts and
  again, with ``"status": "stopped"``, when it stops cleanly::

    {"type": "description", "status": "running" | "stopped", "topology": str,
     "host": str, "pid": int, "started_at": ms, "stopped_at": ms | null,
     "doa_version": str, "python": str, "engine": str, "heartbeat_s": float,
     "runs": [node names this process runs (its --nodes)], "dead_letters": str | null,
     "streams": [{"name", "schema", "fingerprint" (hex), "schema_json", "key",
                  "partitions", "compacted", "config", "shared"}],
     "nodes": [Node.describe() of every node of the topology: name, kind, reads, writes,
               step, the kind's own settings, and "code": the fingerprint of its step's
               source (:func:`step_code`)],
     "assigned": {node: {stream: [partitions]}}}  # what its group gives each node it runs
                                                  # (kafka engine; absent: not known yet)

  It is written again when a node's assignment changes (a rebalance), with the new
  ``assigned``;

- a **heartbeat** (partition :data:`HEARTBEATS`), every ``heartbeat_s`` seconds while it runs
  (``DOA_HEARTBEAT_S``, default 5) and a last one with ``"status": "stopped"``::

    {"type": "heartbeat", "status": "starting" | "running" | "stopped", "topology", "host", "pid",
     "at": ms, "heartbeat_s": float,
     "stats": {node: {"records_in", "records_out", "dead_letters", "snapshots"}}}

Times are the process's wall clock in milliseconds since the epoch. A process is alive while
its latest heartbeat is at most :data:`MISSED` heartbeat intervals old.

Examples
--------
>>> from doa import Topology
>>> t = Topology("sensors", dead_letters="sensors.dlq")
>>> s = t.stream("readings", schema="sensors.reading", key="sensor_id", partitions=4)
>>> d = describe_process(t, ["copy"], "kafka", 5.0, host="h1", pid=42, now_ms=1000)
>>> d["topology"], d["runs"], [s["name"] for s in d["streams"]], d["status"]
('sensors', ['copy'], ['sensors.dlq', 'readings'], 'running')
>>> d["streams"][1]["key"], d["streams"][1]["partitions"], len(d["streams"][1]["fingerprint"])
('sensor_id', 4, 16)
>>> process_key(d)
'sensors/h1/42'
>>> heartbeat(d, now_ms=6000)["at"], alive(6000, 20_000, 5.0), alive(6000, 21_001, 5.0)
(6000, True, False)
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import platform
import socket
import textwrap
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from doa.topology.topology import Topology

TOPIC = "_doa_topologies"
DESCRIPTIONS = 0  # the partition of the description records
HEARTBEATS = 1  # the partition of the heartbeat records
PARTITIONS = 2
MISSED = 3  # a process is alive while its last heartbeat is at most this many intervals old
DEFAULT_HEARTBEAT_S = 5.0


def heartbeat_s(environ: Mapping[str, str] | None = None) -> float:
    """The heartbeat interval: ``DOA_HEARTBEAT_S`` seconds, default 5.

    Examples
    --------
    >>> heartbeat_s({}), heartbeat_s({"DOA_HEARTBEAT_S": "1"})
    (5.0, 1.0)
    >>> heartbeat_s({"DOA_HEARTBEAT_S": "0"})
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: DOA_HEARTBEAT_S must be a number of seconds > 0, got '0'
    """
    from doa.errors import DoaError

    env = os.environ if environ is None else environ
    raw = env.get("DOA_HEARTBEAT_S", "")
    if not raw:
        return DEFAULT_HEARTBEAT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DoaError(f"DOA_HEARTBEAT_S must be a number of seconds > 0, got {raw!r}")
    return value


def now_ms() -> int:
    return int(time.time() * 1000)


def describe_stream(topology: Topology, name: str) -> dict[str, Any]:
    """One stream as a description lists it: schema name, fingerprint and JSON, key, size."""
    s = topology.streams[name]
    schema = topology.codec(name).schema
    return {"name": s.name, "schema": schema.fullname, "fingerprint": schema.fingerprint.hex(),
            "schema_json": schema.json, "key": s.key, "partitions": s.partitions,
            "compacted": "compact" in s.config.get("cleanup.policy", ""),
            "config": dict(s.config), "shared": s.shared}


def describe_process(topology: Topology, runs: Iterable[str], engine: str, interval_s: float,
                     *, host: str | None = None, pid: int | None = None,
                     now_ms: int | None = None) -> dict[str, Any]:
    """The description record of a process running ``runs`` of ``topology`` on ``engine``."""
    from doa import __version__

    return {
        "type": "description", "status": "running", "topology": topology.name,
        "host": host or socket.gethostname(), "pid": os.getpid() if pid is None else pid,
        "started_at": _now() if now_ms is None else now_ms, "stopped_at": None,
        "doa_version": __version__, "python": platform.python_version(), "engine": engine,
        "heartbeat_s": interval_s, "runs": list(runs),
        "dead_letters": topology.dead_letters.name if topology.dead_letters else None,
        "streams": [describe_stream(topology, s) for s in topology.streams],
        "nodes": [{**plain(n.describe()), "code": step_code(n.step)}
                  for n in topology.nodes.values()],
    }


def step_code(step: Any) -> str:
    """A fingerprint (16 hex digits) of a step's source code: the same in two copies of a
    project whose step is the same, whatever their folders, and different when its body is.

    It covers the step function, the functions it closes over or wraps (a kind's step around
    yours, ``functools.partial``, a Numba dispatcher's Python function) and the functions of
    its own module it calls by name, a few levels deep; where there is no source (a function
    made by ``exec``), its bytecode and constants.

    Examples
    --------
    >>> def helper(x):
    ...     return x + 1
    >>> def a(state, batch):
    ...     return state, [helper(r) for r in batch]
    >>> def b(state, batch):
    ...     return state, [helper(r) for r in batch]
    >>> def c(state, batch):
    ...     return state, [r for r in batch]
    >>> step_code(a) == step_code(b), step_code(a) == step_code(c), len(step_code(a))
    (True, False, 16)
    """
    digest = hashlib.sha256()
    for text in _sources(step, set(), 0):
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def _sources(obj: Any, seen: set[int], depth: int) -> Iterable[str]:
    """The source texts of ``obj`` and of the functions it uses (see :func:`step_code`)."""
    obj = getattr(obj, "py_func", None) or getattr(obj, "func", None) or obj
    fn = inspect.unwrap(obj) if callable(obj) else obj
    code = getattr(fn, "__code__", None)
    if code is None or id(fn) in seen or depth > 3 or len(seen) > 50:
        return
    seen.add(id(fn))
    try:
        text = textwrap.dedent(inspect.getsource(fn))
        yield text.replace(f"def {fn.__name__}(", "def (", 1)  # a copy's own name: the same
    except (OSError, TypeError):
        yield f"{code.co_code.hex()} {[c for c in code.co_consts if not inspect.iscode(c)]!r}"
    used = [c.cell_contents for c in fn.__closure__ or () if _filled(c)]
    module = getattr(fn, "__module__", None)
    for name in code.co_names:
        g = getattr(fn, "__globals__", {}).get(name)
        if inspect.isfunction(g) and g.__module__ == module:
            used.append(g)
    for other in used:
        if callable(other):
            yield from _sources(other, seen, depth + 1)


def _filled(cell: Any) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # an empty cell
        return False
    return True


def assigned_of(assigned: Mapping[str, Sequence[int]] | None) -> dict[str, list[int]] | None:
    """A node's assignment as a description holds it: sorted partitions per input stream."""
    if assigned is None:
        return None
    return {stream: sorted(int(p) for p in parts) for stream, parts in sorted(assigned.items())}


def partitions_text(assigned: Mapping[str, Sequence[int]]) -> str:
    """A node's partitions per input stream, as ``doa run`` and the catalog say them.

    Examples
    --------
    >>> partitions_text({"readings": [3, 1]}), partitions_text({"readings": []})
    ('of readings: 1, 3', 'of readings: none')
    >>> partitions_text({"a": [0, 2], "b": [0, 2]}), partitions_text({"a": [0], "b": [1]})
    ('of a, b: 0, 2', 'of a: 0; of b: 1')
    """
    groups: dict[str, list[str]] = {}
    for stream, parts in assigned.items():
        groups.setdefault(numbers(parts), []).append(stream)
    return "; ".join(f"of {', '.join(streams)}: {text}" for text, streams in groups.items())


def numbers(parts: Iterable[int]) -> str:
    """``1, 3``, or ``none``."""
    return ", ".join(str(p) for p in sorted(parts)) or "none"


def heartbeat(description: Mapping[str, Any], stats: Mapping[str, Any] | None = None,
              *, status: str = "running", now_ms: int | None = None) -> dict[str, Any]:
    """The heartbeat record of the process ``description`` describes; ``stats``: per node,
    an object with ``records_in``, ``records_out``, ``dead_letters``, ``snapshots``."""
    return {"type": "heartbeat", "status": status, "topology": description["topology"],
            "host": description["host"], "pid": description["pid"],
            "at": _now() if now_ms is None else now_ms,
            "heartbeat_s": description["heartbeat_s"],
            "stats": {name: _counts(s) for name, s in (stats or {}).items()}}


def _now() -> int:
    return now_ms()


def _counts(s: Any) -> dict[str, int]:
    return {f: int(getattr(s, f, 0)) for f in
            ("records_in", "records_out", "dead_letters", "snapshots")}


def process_key(record: Mapping[str, Any]) -> str:
    """The Kafka key of a process's records: ``TOPOLOGY/HOST/PID``."""
    return f"{record['topology']}/{record['host']}/{record['pid']}"


def alive(last_seen_ms: int, now: int, interval_s: float) -> bool:
    """True if a process last heard of at ``last_seen_ms`` is still alive at ``now``."""
    return now - last_seen_ms <= MISSED * interval_s * 1000


def plain(value: Any) -> Any:
    """``value`` as JSON data (what ``json.dumps`` cannot show becomes its ``str``).

    >>> plain({"a": (1, 2), "b": {3}})
    {'a': [1, 2], 'b': '{3}'}
    """
    return json.loads(json.dumps(value, default=str))


def encode(record: Mapping[str, Any]) -> bytes:
    """A record's value on the topic: compact JSON."""
    return json.dumps(record, separators=(",", ":"), default=str).encode()
