"""The catalog: every stream and node a broker knows of, as JSON-ready data.

:func:`collect` reads a broker (:func:`doa.catalog.read.read_broker`) and :func:`assemble`
turns what it read into one dict; ``doa catalog --json`` prints it, the terminal table and
the HTML page (:mod:`doa.catalog.render`, :mod:`doa.catalog.html`) render it. Its shape::

    {"broker": "HOST:PORT", "collected_at": ms, "window_s": 60.0,
     "streams": [{
        "name": str, "internal": bool, "partitions": int,
        "compacted": bool | null,          # null: neither the broker nor a description says
        "key": str | null,                 # the field whose value is the Kafka key
        "topologies": [str],               # the topologies declaring it
        "schema": null | {"name": str, "fingerprint": hex, "version": int | null,
                          "doc": str | null,
                          "fields": [{"name", "type" (text, e.g. "null | string"), "doc",
                                      "default" (absent when none)}],
                          "versions": [{"version": int, "fingerprint": hex}]},
        "records": int,                    # sum over partitions of end - first offset
        "last_minute": int,                # records with a timestamp in the last window_s
        "rate_per_s": float,               # last_minute / window_s
        "last_timestamp": ms | null,       # newest timestamp among the sampled records
        "writers": [{"topology", "node", "alive": bool, "sampled": int}],
        "publishers": [{"name": str, "sampled": int}],   # lineage header names that are no
                                           # node of the stream's topologies; "(no doa header)"
        "readers": [{"group": str, "topology": str | null, "node": str | null,
                     "committed": int | null, "lag": int | null}]}],
     "hidden": [str],                      # internal topics left out (include_internal=False)
     "nodes": [{
        "topology": str, "name": str, "kind": str, "reads": [str], "writes": [str],
        "settings": {...},                 # the kind's own description (model, detector, ...)
        "alive": bool,                     # a process of it heartbeats (maybe still starting)
        "starting": bool,                  # alive, but no process has started its nodes yet
        "processes": [{"key": "TOPOLOGY/HOST/PID", "host", "pid", "engine", "doa_version",
                       "started_at": ms, "stopped_at": ms | null, "last_seen": ms,
                       "heartbeat_s": float, "alive": bool,
                       "status": "starting" | "running" | "stopped" | "failed" | "silent",
                       "error": "the run's error (failed)" | null,
                       "stats": {"records_in", "records_out", "dead_letters", "snapshots"}
                                | null,
                       "partitions": {stream: [int]} | null,  # what its group assigns it
                                           # now (null: not alive, or not said: faust engine)
                       "code": hex | null}]}],  # its step's fingerprint (step_code)
     "topologies": [{"name", "dead_letters", "streams": [str], "nodes": [str],
                     "processes_alive": int}],
     "warnings": [str]}                    # what the broker would not say, and live
                                           # processes of one node running other step code

A process is alive while its last heartbeat is at most three heartbeat intervals old
(:func:`doa.catalog.describe.alive`); a node is alive while one of its processes is.
``sampled`` counts are over the last ``sample`` records of each partition. Rates count
records by their timestamp (doa's outputs carry their input's event time); on tansu, whose
offset lookups work per batch, counts of the last minute are per batch.

Live processes of one node whose descriptions give its step other code
(:func:`doa.catalog.describe.step_code`: a stale copy of the project, say) share the node's
partitions, each processing its own with its own code: :func:`code_variants` finds them, and
each such node is one line of ``warnings``, naming its processes per variant.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from doa.catalog.describe import alive
from doa.catalog.read import BrokerView, read_broker
from doa.cluster.admin import internal_topic

FORGET_S = 86_400.0  # stopped or silent processes older than this are left out


def collect(broker: str, *, include_internal: bool = False, sample: int = 64,
            window_s: float = 60.0, timeout_s: float = 10.0) -> dict[str, Any]:
    """The catalog of ``broker`` (shape in this module's docstring).

    Parameters
    ----------
    broker : bootstrap address
    include_internal : also describe internal topics (``_doa_*``, state topics, Kafka's own)
    sample : how many recent records per partition to read for their writers' names
    window_s : the window of ``last_minute`` and ``rate_per_s``
    timeout_s : bound of each broker request and of the read loop
    """
    view = read_broker(broker, sample=sample, window_s=window_s, timeout_s=timeout_s)
    return assemble(view, include_internal=include_internal)


def assemble(view: BrokerView, *, include_internal: bool = False) -> dict[str, Any]:
    """The catalog dict of what ``view`` holds.

    Examples
    --------
    >>> v = BrokerView("b:9092", now_ms=100_000, partitions={"a": 1, "_doa_schemas": 1},
    ...                begin={("a", 0): 0}, end={("a", 0): 10}, since={("a", 0): 4})
    >>> c = assemble(v)
    >>> [(s["name"], s["records"], s["last_minute"], s["rate_per_s"]) for s in c["streams"]]
    [('a', 10, 6, 0.1)]
    >>> c["hidden"]
    ['_doa_schemas']
    """
    latest = latest_descriptions(view)
    procs = processes(view)
    nodes = _nodes(latest, procs)
    alive_nodes = {(n["topology"], n["name"]) for n in nodes if n["alive"]}
    streams, hidden = [], []
    for topic in sorted(view.partitions):
        internal = internal_topic(topic)
        if internal and not include_internal:
            hidden.append(topic)
            continue
        streams.append(_stream(view, topic, internal, latest, alive_nodes))
    topologies = [{"name": name, "dead_letters": d.get("dead_letters"),
                   "streams": [s["name"] for s in d.get("streams", ())],
                   "nodes": [n["name"] for n in d.get("nodes", ())],
                   "processes_alive": sum(1 for p in procs
                                          if p["topology"] == name and p["alive"])}
                  for name, d in sorted(latest.items())]
    return {"broker": view.broker, "collected_at": view.now_ms, "window_s": view.window_s,
            "streams": streams, "hidden": hidden, "nodes": nodes, "topologies": topologies,
            "warnings": [*view.warnings, *variant_warnings(code_variants(view, procs))]}


def latest_descriptions(view: BrokerView) -> dict[str, dict[str, Any]]:
    """Per topology, the description of its most recently started process (on a topic never
    compacted, as on tansu, every description is read: the latest one per topology counts);
    processes forgotten (``doa catalog forget``, :mod:`doa.catalog.forget`) are left out."""
    latest: dict[str, dict[str, Any]] = {}
    for d in view.described().values():
        name = d.get("topology")
        if name and (name not in latest
                     or d.get("started_at", 0) >= latest[name].get("started_at", 0)):
            latest[name] = d
    return latest


def processes(view: BrokerView) -> list[dict[str, Any]]:
    """Every process described, with its liveness and ``last_seen`` (ms); those stopped or
    silent for more than :data:`FORGET_S`, and those forgotten, are left out."""
    out = []
    for key, d in sorted(view.described().items()):
        hb = view.heartbeats.get(key) or {}
        interval = float(hb.get("heartbeat_s") or d.get("heartbeat_s") or 5.0)
        last_seen = max(int(d.get("started_at") or 0), int(d.get("stopped_at") or 0),
                        int(hb.get("at") or 0))
        stopped = "stopped" in (d.get("status"), hb.get("status"))
        is_alive = not stopped and alive(last_seen, view.now_ms, interval)
        starting = is_alive and hb.get("status") == "starting"  # its nodes not started yet
        if not is_alive and view.now_ms - last_seen > FORGET_S * 1000:
            continue
        out.append({
            "key": key, "topology": d.get("topology"), "host": d.get("host"),
            "pid": d.get("pid"), "engine": d.get("engine"), "doa_version": d.get("doa_version"),
            "started_at": d.get("started_at"), "stopped_at": d.get("stopped_at"),
            "last_seen": last_seen, "heartbeat_s": interval, "alive": is_alive,
            "status": ("failed" if stopped and d.get("error") else "stopped" if stopped else
                       "starting" if starting else "running" if is_alive else "silent"),
            "error": d.get("error"),
            "runs": list(d.get("runs") or ()), "stats": hb.get("stats"),
            "assigned": d.get("assigned") if is_alive else None,
            "codes": {n.get("name"): (n.get("code"), n.get("step")) for n in
                      d.get("nodes") or () if isinstance(n, dict)}})
    return out


Variants = dict[tuple[str, str], dict[tuple[str, str], list[dict[str, Any]]]]


def code_variants(view: BrokerView, procs: list[dict[str, Any]] | None = None) -> Variants:
    """Per ``(topology, node)`` whose live processes run more than one step code: each code
    (:func:`doa.catalog.describe.step_code`) and the step's first place (``FILE:LINE``) in
    the first process running it, with the processes running it; processes whose description
    says no code (an older doa) are left out."""
    found: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    where: dict[str, str] = {}
    for p in processes(view) if procs is None else procs:
        if not p["alive"]:
            continue
        for node in p["runs"]:
            code, step = p["codes"].get(node) or (None, None)
            if code:
                where.setdefault(code, str(step or "?"))
                found.setdefault((str(p["topology"]), node), {}).setdefault(code, []).append(p)
    return {k: {(code, where[code]): ps for code, ps in v.items()}
            for k, v in found.items() if len(v) > 1}


def variant_warnings(variants: Variants) -> list[str]:
    """One line per node of :func:`code_variants`.

    >>> p = lambda pid: {"host": "h", "pid": pid}
    >>> print(*variant_warnings({("t", "n"): {("ab12", "/app/t.py:9"): [p(1), p(2)],
    ...                                       ("cd34", "/old/t.py:9"): [p(3)]}}))
    ... # doctest: +NORMALIZE_WHITESPACE
    node 'n' of topology 't': its live processes run different step code (code ab12, step
    /app/t.py:9: h:1, h:2; code cd34, step /old/t.py:9: h:3); each processes the partitions its
    group gives it with its own code
    """
    return [f"node {node!r} of topology {topology!r}: its live processes run different step "
            "code (" + "; ".join(f"code {code}, step {step}: {hosts(ps)}"
                                 for (code, step), ps in codes.items())
            + "); each processes the partitions its group gives it with its own code"
            for (topology, node), codes in sorted(variants.items())]


def hosts(procs: list[dict[str, Any]]) -> str:
    """``host:pid, host:pid``."""
    return ", ".join(f"{p['host']}:{p['pid']}" for p in procs)


def _nodes(latest: dict[str, dict[str, Any]],
           processes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for topology, d in sorted(latest.items()):
        for n in d.get("nodes", ()):
            settings = {k: v for k, v in n.items()
                        if k not in ("name", "kind", "reads", "writes")}
            procs = [{**{k: v for k, v in p.items()
                         if k not in ("topology", "runs", "assigned", "codes")},
                      "stats": (p["stats"] or {}).get(n["name"]) if p["stats"] else None,
                      "partitions": (p["assigned"] or {}).get(n["name"]),
                      "code": (p["codes"].get(n["name"]) or (None,))[0]}
                     for p in processes if p["topology"] == topology and n["name"] in p["runs"]]
            running = any(p["alive"] and p["status"] != "starting" for p in procs)
            out.append({"topology": topology, "name": n["name"], "kind": n.get("kind"),
                        "reads": list(n.get("reads", ())), "writes": list(n.get("writes", ())),
                        "settings": settings, "alive": any(p["alive"] for p in procs),
                        "starting": not running and any(p["alive"] for p in procs),
                        "processes": procs})
    return out


def _stream(view: BrokerView, topic: str, internal: bool, latest: dict[str, dict[str, Any]],
            alive_nodes: set[tuple[str, str]]) -> dict[str, Any]:
    parts = range(view.partitions[topic])
    records = sum(max(0, view.end.get((topic, p), 0) - view.begin.get((topic, p), 0))
                  for p in parts)
    recent = 0
    for p in parts:
        since = view.since.get((topic, p))
        if since is not None:
            first = max(since, view.begin.get((topic, p), 0))
            recent += max(0, view.end.get((topic, p), 0) - first)
    declared = {name: next(s for s in d["streams"] if s["name"] == topic)
                for name, d in latest.items()
                if any(s["name"] == topic for s in d.get("streams", ()))}
    versions = view.registry.get(topic, [])
    schema = _schema(versions, declared)
    key = versions[-1].get("key") if versions else None
    if key is None and declared:
        key = next(iter(declared.values())).get("key")
    writers, publishers = _writers(view.writers.get(topic, Counter()), topic, latest,
                                   declared, alive_nodes)
    return {"name": topic, "internal": internal, "partitions": len(parts),
            "compacted": _compacted(view.configs.get(topic), declared.values()),
            "key": key, "topologies": sorted(declared), "schema": schema,
            "records": records, "last_minute": recent,
            "rate_per_s": round(recent / view.window_s, 3) if view.window_s else 0.0,
            "last_timestamp": view.last_timestamp.get(topic),
            "writers": writers, "publishers": publishers,
            "readers": _readers(view, topic, latest)}


def _compacted(config: dict[str, str] | None, declared: Any) -> bool | None:
    if config and "cleanup.policy" in config:
        return "compact" in config["cleanup.policy"]
    said = [bool(s.get("compacted")) for s in declared]
    return any(said) if said else None


def _schema(versions: list[dict[str, Any]],
            declared: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    if versions:
        last = versions[-1]
        body, fingerprint = last.get("schema"), last.get("fingerprint")
        version = last.get("version")
    elif declared:
        first = next(iter(declared.values()))
        body, fingerprint, version = first.get("schema_json"), first.get("fingerprint"), None
    else:
        return None
    body = body if isinstance(body, dict) else {"type": body}
    return {"name": body.get("name") if "namespace" not in body
            else f"{body['namespace']}.{body.get('name')}",
            "fingerprint": fingerprint, "version": version, "doc": body.get("doc"),
            "fields": [_field(f) for f in body.get("fields", ())],
            "versions": [{"version": v.get("version"), "fingerprint": v.get("fingerprint")}
                         for v in versions]}


def _field(f: dict[str, Any]) -> dict[str, Any]:
    out = {"name": f.get("name"), "type": type_text(f.get("type")), "doc": f.get("doc")}
    if "default" in f:
        out["default"] = f["default"]
    return out


def type_text(t: Any) -> str:
    """An Avro type as short text.

    >>> type_text(["null", "string"]), type_text({"type": "array", "items": "double"})
    ('null | string', 'array<double>')
    >>> type_text({"type": "long", "logicalType": "timestamp-millis"})
    'long (timestamp-millis)'
    >>> type_text({"type": "record", "name": "Loc", "fields": []})
    'Loc'
    """
    if isinstance(t, list):
        return " | ".join(type_text(x) for x in t)
    if not isinstance(t, dict):
        return str(t)
    kind = t.get("type")
    if "logicalType" in t:
        return f"{type_text(kind)} ({t['logicalType']})"
    if kind == "array":
        return f"array<{type_text(t.get('items'))}>"
    if kind == "map":
        return f"map<{type_text(t.get('values'))}>"
    if kind in ("record", "enum", "fixed", "error"):
        return str(t.get("name"))
    return type_text(kind)


def _writers(seen: Counter[str], topic: str, latest: dict[str, dict[str, Any]],
             declared: dict[str, dict[str, Any]], alive_nodes: set[tuple[str, str]]
             ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Nodes that write ``topic`` (declared, or named by sampled headers) and the other
    names in the sampled headers (publishers)."""
    writers: dict[tuple[str, str], dict[str, Any]] = {}
    known: dict[str, str] = {}  # node name -> its topology, for topologies declaring topic
    for name in declared:
        dead_letters = latest[name].get("dead_letters") == topic  # every node may write it
        for n in latest[name].get("nodes", ()):
            known.setdefault(n["name"], name)
            if dead_letters or topic in n.get("writes", ()):
                writers[(name, n["name"])] = {"topology": name, "node": n["name"],
                                              "alive": (name, n["name"]) in alive_nodes,
                                              "sampled": 0}
    publishers = []
    for who, count in sorted(seen.items()):
        if who in known:
            entry = writers.setdefault((known[who], who), {
                "topology": known[who], "node": who,
                "alive": (known[who], who) in alive_nodes, "sampled": 0})
            entry["sampled"] += count
        else:
            publishers.append({"name": who, "sampled": count})
    return sorted(writers.values(), key=lambda w: (w["topology"], w["node"])), publishers


def _readers(view: BrokerView, topic: str,
             latest: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    owners = {}
    for name, d in latest.items():
        for n in d.get("nodes", ()):
            owners[f"{name}.{n['name']}"] = owners[f"{name}.{n['name']}.faust"] = (name, n)
    out = []
    grouped = set()
    for group, committed in sorted(view.groups.items()):
        mine = {p: o for (t, p), o in committed.items() if t == topic}
        if not mine:
            continue
        lag = sum(max(0, view.end.get((topic, p), 0) - o) for p, o in mine.items())
        owner = owners.get(group)
        if owner:
            grouped.add((owner[0], owner[1]["name"]))
        out.append({"group": group, "topology": owner[0] if owner else None,
                    "node": owner[1]["name"] if owner else None,
                    "committed": sum(mine.values()), "lag": lag})
    for name, d in sorted(latest.items()):  # declared readers that committed nothing yet
        for n in d.get("nodes", ()):
            if topic in n.get("reads", ()) and (name, n["name"]) not in grouped:
                out.append({"group": f"{name}.{n['name']}", "topology": name,
                            "node": n["name"], "committed": None, "lag": None})
    return out

