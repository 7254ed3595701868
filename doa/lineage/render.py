"""A lineage trace as a dict (for ``--json``) and as a tree of text lines (for the terminal).

Examples
--------
>>> from doa.events import Event
>>> from doa.lineage.log import Record
>>> from doa.lineage.walk import Step, Trace
>>> root = Record(Event({"x": 1}, stream="s", partition=0, offset=3, timestamp=5), None)
>>> print("\\n".join(tree(Trace(root, [Step("parent", None, note="gone")], []))))
s:0:3  t=5  id=d38b3b4e…  node=?
└─ ancestry
   └─ parent: not found (gone)
>>> print("\\n".join(tree(Trace(root, [], [Step("dead letter", root, note="ValueError: x")]))))
s:0:3  t=5  id=d38b3b4e…  node=?
├─ ancestry: none (a source record: no parents)
└─ descendants
   └─ dead letter: s:0:3  t=5  id=d38b3b4e…  node=?  (ValueError: x)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from doa.lineage.log import Record
from doa.lineage.walk import Step, Trace

__all__ = ["as_dict", "step_dict", "tree"]


def step_dict(rec: Record, records: bool = False) -> dict[str, Any]:
    """What one record of a lineage shows: coordinates, time, header, maybe the record (a
    tombstone's is null, and ``tombstone`` says why).

    >>> from doa.events import Event
    >>> gone = Record(Event({}, stream="s", partition=0, offset=3, timestamp=1), None,
    ...               tombstone=True)
    >>> d = step_dict(gone, records=True)
    >>> d["tombstone"], d["record"], _shown(gone)
    (True, None, 'a tombstone: no value')
    """
    e, lin = rec.event, rec.lineage
    out: dict[str, Any] = {
        "stream": e.stream, "partition": e.partition, "offset": e.offset,
        "timestamp": e.timestamp, "id": e.id.hex(),
        "node": lin.node if lin else None,
        "fingerprint": lin.fingerprint.hex() if lin else None,
        "model_version": lin.model_version if lin else 0,
        "parents": [p.hex() for p in lin.parents] if lin else [],
        "parent_coordinates": [str(c) for c in lin.coordinates] if lin else [],
    }
    if rec.error:
        out["error"] = rec.error
    if rec.tombstone:
        out["tombstone"] = True
    if records:
        out["record"] = None if rec.tombstone else dict(e)
    return out


def _steps(steps: list[Step], records: bool) -> list[dict[str, Any]]:
    out = []
    for s in steps:
        item: dict[str, Any] = {"relation": s.relation}
        if s.record is not None:
            item.update(step_dict(s.record, records))
        if s.note:
            item["note"] = s.note
        if s.steps:
            item["steps"] = _steps(s.steps, records)
        out.append(item)
    return out


def as_dict(t: Trace, records: bool = False) -> dict[str, Any]:
    """The whole trace as JSON-ready data (``doa lineage --json``)."""
    return {"record": step_dict(t.root, records), "ancestry": _steps(t.ancestry, records),
            "descendants": _steps(t.descendants, records), "fetches": t.fetches,
            "seconds": round(t.seconds, 4)}


def _line(rec: Record) -> str:
    e, lin = rec.event, rec.lineage
    node = lin.node if lin else "?"
    model = f"  model={lin.model_version}" if lin and lin.model_version else ""  # 0: no model
    return f"{e.stream}:{e.partition}:{e.offset}  t={e.timestamp}  id={e.id.hex()[:8]}…  " \
           f"node={node}{model}" + (f"  fp={lin.fingerprint.hex()}" if lin else "")


def _tree(steps: list[Step], prefix: str, records: bool) -> Iterator[str]:
    for i, s in enumerate(steps):
        last = i == len(steps) - 1
        head = f"{prefix}{'└─' if last else '├─'} {s.relation}: "
        body = f"not found ({s.note})" if s.record is None else \
            _line(s.record) + (f"  ({s.note})" if s.note else "")
        yield head + body
        deeper = prefix + ("   " if last else "│  ")
        if records and s.record is not None:
            yield f"{deeper}  {_shown(s.record)}"
        yield from _tree(s.steps, deeper, records)


def tree(t: Trace, records: bool = False) -> list[str]:
    """The trace as lines of a tree: the record, then its ancestry and its descendants."""
    lines = [_line(t.root)]
    if records:
        lines.append(f"  {_shown(t.root)}")
    parts = [("ancestry", t.ancestry), ("descendants", t.descendants)]
    parts = [(n, s) for n, s in parts if s or n == "ancestry"]
    source = t.root.lineage is None or not t.root.lineage.parents
    for i, (name, steps) in enumerate(parts):
        last = i == len(parts) - 1
        none = ": none (a source record: no parents)" if not steps and source else ""
        lines.append(f"{'└─' if last else '├─'} {name}{none}")
        lines.extend(_tree(steps, "   " if last else "│  ", records))
    return lines


def _shown(rec: Record) -> str:
    """A record's fields in one line (a tombstone has none: it says so)."""
    return "a tombstone: no value" if rec.tombstone else _short(dict(rec.event))


def _short(record: dict[str, Any], most: int = 300) -> str:
    text = ", ".join(f"{k}={_value(v)}" for k, v in record.items())
    return text if len(text) <= most else text[:most - 1] + "…"


def _value(v: Any) -> str:
    if isinstance(v, bytes):
        return f"<{len(v)} bytes>"
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v)
