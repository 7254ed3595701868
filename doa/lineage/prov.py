"""A lineage trace as a W3C PROV-JSON document (https://www.w3.org/Submission/prov-json/).

Entities are records (``doa:record-<event id>``: a replayed duplicate is the same entity),
activities are node runs (``doa:run-<node>-<event id>``: the run of a node that generated
that record), agents are the nodes (``prov:SoftwareAgent``). Each record ``wasGeneratedBy``
its run, which ``used`` the record's parents and ``wasAssociatedWith`` its node; each record
``wasDerivedFrom`` each parent (a dead letter from its record, a replay from its letter). A
learner's prediction adds ``used`` edges that the headers do not hold: the run that made the
prediction used the model version that made it, the run that made the outcome used the
prediction, and the runs of the next model version and metric used the label.

Examples
--------
>>> from doa.events import Event, Lineage
>>> from doa.lineage.log import Record
>>> from doa.lineage.walk import Step, Trace
>>> txn = Event({}, stream="transactions", partition=0, offset=0, timestamp=0, id=b"\\2" * 16)
>>> feat = Event({}, stream="features", partition=0, offset=0, timestamp=0, id=b"\\1" * 16)
>>> doc = document(Trace(Record(feat, Lineage(feat.id, "featurize", b"\\0" * 8, (txn.id,))),
...                      [Step("parent", Record(txn, None))], []))
>>> [(d["prov:generatedEntity"][11:15], d["prov:usedEntity"][11:15])
...  for d in doc["wasDerivedFrom"].values()]
[('0101', '0202')]
>>> sorted(doc["activity"]), sorted(doc["agent"])
(['doa:run-featurize-01010101010101010101010101010101'], ['doa:node-featurize'])
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from doa.lineage.log import Record
from doa.lineage.walk import Step, Trace

__all__ = ["NAMESPACE", "document"]

NAMESPACE = "https://github.com/doa/doa/ns/lineage#"


def document(t: Trace) -> dict[str, Any]:
    """The PROV-JSON document of a trace (a dict ready for ``json.dumps``)."""
    doc = _Doc()
    doc.record(t.root)
    for s in t.ancestry:
        doc.walk_up(t.root, s)
    for s in t.descendants:
        doc.walk_down(t.root, s)
    return doc.finish()


class _Doc:
    def __init__(self) -> None:
        self.d: dict[str, dict[str, Any]] = {k: {} for k in (
            "entity", "activity", "agent", "wasGeneratedBy", "used", "wasDerivedFrom",
            "wasAssociatedWith")}
        self._n = 0

    def _relation(self, kind: str, body: dict[str, Any]) -> None:
        if body not in self.d[kind].values():
            self._n += 1
            self.d[kind][f"_:{kind[0:3]}{self._n}"] = body

    def record(self, rec: Record) -> str:
        e, lin = rec.event, rec.lineage
        ent = _entity(rec)
        if ent in self.d["entity"]:
            return ent
        time = _time(e.timestamp)
        attrs: dict[str, Any] = {
            "prov:type": "doa:Record", "prov:label": f"{e.stream}:{e.partition}:{e.offset}",
            "doa:stream": e.stream, "doa:partition": e.partition, "doa:offset": e.offset,
            "doa:id": e.id.hex(), "doa:timestamp": time}
        if lin is not None:
            attrs.update({"doa:fingerprint": lin.fingerprint.hex(),
                          "doa:model_version": lin.model_version})
            run, agent = _activity(rec), f"doa:node-{_safe(lin.node)}"
            self.d["activity"][run] = {"prov:type": "doa:NodeRun", "doa:node": lin.node,
                                      "prov:endTime": time}
            self.d["agent"][agent] = {"prov:type": "prov:SoftwareAgent",
                                      "prov:label": lin.node}
            self._relation("wasGeneratedBy", {"prov:entity": ent, "prov:activity": run,
                                              "prov:time": time})
            self._relation("wasAssociatedWith", {"prov:activity": run, "prov:agent": agent})
        self.d["entity"][ent] = attrs
        return ent

    def derived(self, child: Record, parent: Record) -> None:
        ent, used = self.record(child), self.record(parent)
        body: dict[str, Any] = {"prov:generatedEntity": ent, "prov:usedEntity": used}
        if child.lineage is not None:
            self.used(child, parent)
            body["prov:activity"] = _activity(child)
        self._relation("wasDerivedFrom", body)

    def used(self, by: Record, what: Record) -> None:
        if by.lineage is not None:
            self.record(by)
            self._relation("used", {"prov:activity": _activity(by),
                                    "prov:entity": self.record(what)})

    def walk_up(self, child: Record, s: Step) -> None:
        if s.record is None:
            return
        self.derived(child, s.record)
        for up in s.steps:
            self.walk_up(s.record, up)

    def walk_down(self, parent: Record, s: Step) -> None:
        rec = s.record
        if rec is None:
            return
        if s.relation in ("child", "dead letter", "replay"):
            self.derived(rec, parent)
        elif s.relation == "made by":
            self.used(parent, rec)  # the prediction's run used that model version
        elif s.relation in ("learned by", "counted in"):
            self.used(rec, parent)  # that version / metric learned from the label
        else:  # "label": the outcome's run used the prediction (its logged features)
            self.record(rec)
            for out in s.steps:
                if out.relation == "child" and out.record is not None:
                    self.used(out.record, parent)
        for down in s.steps:
            self.walk_down(rec, down)

    def finish(self) -> dict[str, Any]:
        out: dict[str, Any] = {"prefix": {"doa": NAMESPACE}}
        out.update({k: v for k, v in self.d.items() if v})
        return out


def _entity(rec: Record) -> str:
    return f"doa:record-{rec.event.id.hex()}"


def _activity(rec: Record) -> str:
    node = rec.lineage.node if rec.lineage else "unknown"
    return f"doa:run-{_safe(node)}-{rec.event.id.hex()}"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_.-" else "_" for c in name)


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds")
