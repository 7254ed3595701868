"""Which versions a learner or a model node keeps, and which runs live or as candidate,
replayed from its model events / versions stream: what ``doa model rollback`` and ``doa model
promote`` check before they send a command (the nodes' own rules, in
:mod:`doa.learner.versions` and :mod:`doa.model.versions`; tests/test_cli_errors.py keeps the
two in step).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["learner_kept", "model_candidates", "model_kept", "model_roles"]


def learner_kept(events: list[Any], keep: int, partitions: int) -> dict[int, list[int]]:
    """Per partition, the versions a learner keeps, from its model events: its first model
    (version 1) and every version it made since (created, rollback, reset, promoted), the
    last ``keep`` of them, as :mod:`doa.learner.versions` keeps them.

    >>> e = [{"action": a, "version": v, "partition": 0}
    ...      for a, v in [("created", 2), ("candidate", 3), ("promoted", 3), ("reset", 4)]]
    >>> learner_kept(e, keep=3, partitions=1)
    {0: [2, 3, 4]}
    """
    kept: dict[int, list[int]] = {p: [1] for p in range(partitions)}
    for e in events:
        if e["action"] in ("created", "rollback", "reset", "promoted"):
            versions = kept.setdefault(e["partition"], [1])
            if e["version"] not in versions:
                versions.append(e["version"])
            del versions[:max(0, len(versions) - keep)]
    return {p: sorted(v) for p, v in kept.items()}


def model_kept(records: list[Any], own: int, keep: int,
               partitions: int) -> dict[int, list[int]]:
    """Per partition, the versions a model node can roll back to, from its versions stream:
    its own version and the published versions whose bytes it keeps (the newest ``keep``,
    and the live and candidate ones), as :mod:`doa.model.versions` decides.

    >>> from doa.events import Event
    >>> def rec(action, v, candidate=False): return Event(
    ...     {"action": action, "version": v, "candidate": candidate, "chunk": 0, "chunks": 1},
    ...     stream="m.versions", partition=0, offset=0, timestamp=0)
    >>> model_kept([rec("publish", 2), rec("publish", 3), rec("publish", 4)], 1, 2, 1)
    {0: [1, 3, 4]}
    >>> model_roles([rec("publish", 2), rec("publish", 3, candidate=True)], 1, 2, 1)
    {0: {'live': 2, 'candidate': 3, 'kept': [1, 2, 3]}}
    """
    return {p: r["kept"] for p, r in model_roles(records, own, keep, partitions).items()}


def model_roles(records: list[Any], own: int, keep: int, partitions: int,
                events: Sequence[Any] = ()) -> dict[int, dict[str, Any]]:
    """Per partition, a model node's ``live`` and ``candidate`` versions and the versions it
    ``kept``, from its versions stream (see :func:`model_kept`) and the ``promoted`` and
    ``rejected`` events of its ``promote_when`` policy on its models stream (``events``),
    each applied where the node applied it: after the last versions record its events show
    applied before it (their lineage names it), by the rules of a ``promote`` command.

    >>> from doa.events import Coordinates, Event, Lineage, pack_lineage
    >>> def rec(v, offset, candidate=False): return Event(
    ...     {"action": "publish", "version": v, "candidate": candidate, "chunk": 0,
    ...      "chunks": 1}, stream="m.versions", partition=0, offset=offset, timestamp=0)
    >>> def ev(action, v, came_from): return Event(
    ...     {"action": action, "version": v, "partition": 0}, stream="m.models", partition=0,
    ...     offset=0, timestamp=0, headers=(("doa", pack_lineage(Lineage(
    ...         b"i" * 16, "m", b"f" * 8, (b"p" * 16,), 2, (came_from,)))),))
    >>> records = [rec(2, 0, candidate=True), rec(3, 1)]
    >>> events = [ev("candidate", 2, Coordinates("m.versions", 0, 0)),
    ...           ev("promoted", 2, Coordinates("m.labels", 0, 300))]
    >>> model_roles(records[:1], 1, 5, 1, events)[0]
    {'live': 2, 'candidate': None, 'kept': [1, 2]}
    >>> model_roles(records, 1, 5, 1, events)[0]  # published after the promotion
    {'live': 3, 'candidate': None, 'kept': [1, 2, 3]}
    """
    roles: dict[int, dict[str, Any]] = {}
    for p in range(partitions):
        live, candidate, published, gone = own, None, [own], set()
        for r in _in_order(records, events, p):
            action, v = r["action"], int(r["version"])
            if action == "publish" and r["chunk"] == r["chunks"] - 1 and v > max(published):
                published.append(v)
                live, candidate = (live, v) if r["candidate"] else (v, candidate)
                held = [x for x in published[1:] if x not in gone]
                gone |= {x for x in held[:max(0, len(held) - keep)] if x not in (live, candidate)}
            elif action in ("promote", "promoted") and candidate is not None and v in (
                    0, candidate):
                live, candidate = candidate, None
            elif action == "rejected" and v == candidate:
                candidate = None
            elif action == "rollback" and v in published and v not in gone:
                live, candidate = v, None if candidate == v else candidate
        roles[p] = {"live": live, "candidate": candidate,
                    "kept": [v for v in published if v not in gone]}
    return roles


def _in_order(records: list[Any], events: Sequence[Any], partition: int) -> list[Any]:
    """The versions records of ``partition`` with its policy's ``promoted`` and ``rejected``
    events placed after the last versions record the node had applied before each (its model
    events name the versions record they came from in their lineage)."""
    mine = [r for r in records if r.partition == partition]
    streams = {r.stream for r in mine}
    steps: list[tuple[int, int, int, Any]] = [(r.offset, 0, i, r) for i, r in enumerate(mine)]
    applied = -1
    for i, e in enumerate(x for x in events if x["partition"] == partition):
        lineage = getattr(e, "lineage", None)
        came = lineage.coordinates[0] if lineage is not None and lineage.coordinates else None
        if came is not None and came.stream in streams:
            applied = max(applied, came.offset)
        elif e["action"] in ("promoted", "rejected"):  # no lineage (v1 headers): at the end
            steps.append((applied if came is not None else sys.maxsize, 1, i, e))
    return [step for *_, step in sorted(steps, key=lambda s: s[:3])]


def model_candidates(records: list[Any], events: list[Any], own: int, keep: int,
                     partitions: int) -> dict[int, int]:
    """Per partition, the candidate a model node runs (:func:`model_roles`, with the
    ``promote_when`` policy's decisions among its model ``events``); partitions with none are
    left out.

    >>> from doa.events import Event
    >>> def rec(v, p): return Event(
    ...     {"action": "publish", "version": v, "candidate": True, "chunk": 0, "chunks": 1},
    ...     stream="m.versions", partition=p, offset=0, timestamp=0)
    >>> records = [rec(2, 0), rec(2, 1), rec(3, 0), rec(3, 1)]
    >>> model_candidates(records, [], 1, 5, 2)
    {0: 3, 1: 3}
    >>> model_candidates(records, [{"action": "rejected", "version": 3, "partition": 1}],
    ...                  1, 5, 2)
    {0: 3}
    """
    return {p: r["candidate"] for p, r in
            model_roles(records, own, keep, partitions, events).items()
            if r["candidate"] is not None}
