"""A model node's versions: which one is live, which one is the candidate, and how a record
of the versions stream changes them.

The versions live in the node's state (per input partition), so a restart from a snapshot
resumes with the same live and candidate versions, and replays switch at the same records:

- ``state["version"]``: the live version (its outputs carry it);
- ``state["candidate"]``: the version scored beside it into the shadow stream, or None;
- ``state["versions"]``: every version known, with its SHA-256, format, note, publisher,
  time and ``classes`` (``doa model publish --classes``, or None); ``data`` holds the
  artifact's bytes of the last ``keep`` published versions (None for the topology's own
  model and for versions no longer kept: those cannot be rolled back to);
- ``state["parts"]``: the chunks of versions not yet whole (:mod:`doa.model.artifacts`).

Versions are artifacts, not training runs: a rollback makes an older artifact live again
under its own number, so every output names the artifact that made it. Each change is one
``doa.ModelEvent`` (``created``, ``candidate``, ``rollback``, ``promoted``, ``rejected``). One
candidate runs at a time: a candidate published while another runs replaces it, and the node
says so (``rejected``, reason ``replaced by candidate version N``) before ``candidate``.

Examples
--------
>>> state = initial(1, "predict_batch")
>>> from doa.model.artifacts import chunk_records
>>> [chunk] = chunk_records("m", 2, b"artifact", fmt="sklearn", chunk_bytes=64,
...                         publisher="", published=0, key=None, candidate=True)
>>> [change] = apply(state, chunk, node="m", key=None, keep=3)
>>> change["action"], change["version"], change["from_version"], state["candidate"]
('candidate', 2, 1, 2)
>>> [third] = chunk_records("m", 3, b"other", fmt="sklearn", chunk_bytes=64, publisher="",
...                         published=0, key=None, candidate=True)
>>> [(c["action"], c["version"], c["reason"]) for c in apply(state, third, node="m",
...                                                          key=None, keep=3)]
[('rejected', 2, 'replaced by candidate version 3'), ('candidate', 3, 'published by ?')]
>>> [change] = apply(state, {"action": "promote", "version": 0, "reason": ""}, node="m",
...                  key=None, keep=3)
>>> change["action"], state["version"], state["candidate"]
('promoted', 3, None)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from doa.model.artifacts import ArtifactError, add_chunk
from doa.model.compat import stored_classes

__all__ = ["VersionError", "apply", "change", "command", "initial"]


class VersionError(ValueError):
    """A command names a version the node cannot switch to."""


def command(node: str, action: str, version: int = 0, reason: str = "", *,
            publisher: str = "", published: int = 0) -> dict[str, Any]:
    """A ``doa.ModelArtifact`` command: ``rollback`` to ``version``, or ``promote`` the
    candidate ``version`` (0: whichever runs); sent by ``publisher`` (user@host) at
    ``published`` (wall-clock ms), as a publication is."""
    return {"model": node, "action": action, "version": version, "candidate": False,
            "sha256": "", "format": "", "metadata": {}, "note": "", "publisher": publisher,
            "published": published, "chunk": 0, "chunks": 0, "size": 0, "data": b"",
            "reason": reason}


def initial(version: int, fmt: str) -> dict[str, Any]:
    """The versions part of a fresh state: the topology's model, live as ``version``."""
    return {"scored": 0, "version": version, "candidate": None, "parts": {},
            "versions": {version: {"sha256": "", "format": fmt, "note": "the topology's model",
                                   "publisher": "", "published": 0, "data": None}}}


def change(state: dict[str, Any], node: str, action: str, version: int, from_version: int,
           reason: str, timestamp: int, partition: int) -> dict[str, Any]:
    """A ``doa.ModelEvent`` record of a change (labels and metric: the live version's)."""
    labels = state.get("labels", {}).get(state["version"], 0)
    metric = state.get("metrics", {}).get(state["version"])
    value = None if metric is None else metric.get()
    return {"model": node, "action": action, "version": version, "from_version": from_version,
            "reason": reason, "labels": labels,
            "metric": None if value is None or value != value else float(value),
            "partition": partition, "timestamp": timestamp, "blob": None}


def apply(state: dict[str, Any], record: Mapping[str, Any], *, node: str, key: bytes | None,
          keep: int, metric: Any = None, partition: int = 0,
          timestamp: int = 0) -> list[dict[str, Any]]:
    """Apply one ``doa.ModelArtifact`` record; the ``doa.ModelEvent`` records it makes.

    Raises :class:`VersionError` (a command for a version not kept, a version that is not
    new) or :class:`doa.model.artifacts.ArtifactError` (a bad artifact): the record becomes
    a dead letter and nothing changes.
    """
    action = record["action"]
    if action == "publish":
        return _publish(state, record, node=node, key=key, keep=keep, metric=metric,
                        partition=partition, timestamp=timestamp)
    if action == "promote":
        candidate = state["candidate"]
        if candidate is None:
            raise VersionError(f"model node {node!r}: promote, but no candidate runs")
        named = int(record["version"])  # 0: whichever runs (a command from before doa named it)
        if named not in (0, candidate):
            raise VersionError(f"model node {node!r}: promote version {named}, but candidate "
                               f"version {candidate} runs")
        return [promote(state, node=node, reason=record["reason"] or "doa model promote",
                        partition=partition, timestamp=timestamp)]
    target = int(record["version"])
    known = state["versions"].get(target)
    if known is None or (known["data"] is None and known["sha256"]):
        kept = sorted(v for v, k in state["versions"].items()
                      if k["data"] is not None or not k["sha256"])
        raise VersionError(f"model node {node!r}: cannot roll back to version {target}: "
                           f"kept versions are {kept}")
    previous = state["version"]
    state["version"] = target
    if state["candidate"] == target:
        state["candidate"] = None
        state.pop("race", None)
    _switched(state, metric)
    return [change(state, node, "rollback", target, previous,
                   record["reason"] or f"doa model rollback to {target}", timestamp, partition)]


def promote(state: dict[str, Any], *, node: str, reason: str, partition: int,
            timestamp: int) -> dict[str, Any]:
    """Make the candidate live (its metric so far carries over); the ``promoted`` event."""
    previous, state["version"], state["candidate"] = state["version"], state["candidate"], None
    state.pop("race", None)
    return change(state, node, "promoted", state["version"], previous, reason, timestamp,
                  partition)


def reject(state: dict[str, Any], *, node: str, reason: str, partition: int,
           timestamp: int) -> dict[str, Any]:
    """Stop running the candidate; the ``rejected`` event."""
    candidate, state["candidate"] = state["candidate"], None
    state.pop("race", None)
    return change(state, node, "rejected", candidate, state["version"], reason, timestamp,
                  partition)


def _publish(state: dict[str, Any], record: Mapping[str, Any], *, node: str, key: bytes | None,
             keep: int, metric: Any, partition: int, timestamp: int) -> list[dict[str, Any]]:
    version = int(record["version"])
    known = state["versions"].get(version)
    if known is not None:
        if known["sha256"] == record["sha256"]:
            return []  # a publication repeated (a retry): it is here already
        raise ArtifactError(f"model node {node!r}: version {version} is published already "
                            f"with sha256 {known['sha256'][:12] or '(the topology model)'}, "
                            f"not {record['sha256'][:12]}; versions only go up")
    whole = add_chunk(state["parts"], record, node=node, key=key)
    if whole is None:
        return []
    if version <= max(state["versions"]):
        raise VersionError(f"model node {node!r}: version {version} is not newer than "
                           f"{max(state['versions'])}; versions only go up")
    for v in [v for v in state["parts"] if v < version]:  # abandoned publications
        del state["parts"][v]
    state["versions"][version] = {k: whole[k] for k in ("sha256", "format", "note",
                                                        "publisher", "published")}
    state["versions"][version]["data"] = whole["data"]
    state["versions"][version]["classes"] = stored_classes(whole["metadata"])  # --classes
    note = f"published by {whole['publisher'] or '?'}" + (f": {whole['note']}"
                                                           if whole["note"] else "")
    live = state["version"]
    events: list[dict[str, Any]] = []
    if whole["candidate"]:
        if state["candidate"] is not None:  # one candidate at a time: say it was replaced
            events.append(reject(state, node=node, partition=partition, timestamp=timestamp,
                                 reason=f"replaced by candidate version {version}"))
        state["candidate"] = version
        _switched(state, metric)
        events.append(change(state, node, "candidate", version, live, note, timestamp,
                             partition))
    else:
        state["version"] = version
        _switched(state, metric)
        events.append(change(state, node, "created", version, live, note, timestamp,
                             partition))
    _forget(state, keep)
    return events


def _forget(state: dict[str, Any], keep: int) -> None:
    """Drop the bytes of published versions beyond the newest ``keep`` (never the live or
    the candidate's)."""
    published = sorted(v for v, k in state["versions"].items() if k["data"] is not None)
    using = {state["version"], state["candidate"]}
    for v in published[:max(0, len(published) - keep)]:
        if v not in using:
            state["versions"][v]["data"] = None


def _switched(state: dict[str, Any], metric: Any) -> None:
    """After a new live version or candidate: with labels tracked (``metric`` given), the
    live version's metric starts afresh, and with a candidate both start a race on the
    same labels."""
    if metric is None or "metrics" not in state:
        return
    live, candidate = state["version"], state["candidate"]
    for v in (live, candidate):
        if v is not None:
            state["metrics"][v] = metric.clone()
            state["labels"][v] = 0
    if candidate is None:
        state.pop("race", None)
    else:
        state["race"] = (live, candidate)
