"""`doa lineage --prov` and `--json` on a hand-built trace: PROV-JSON structure (W3C note
https://www.w3.org/Submission/prov-json/) and the edges a prediction's lineage must have."""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any

from doa.events import Coordinates, Event, Lineage
from doa.lineage.find import parse_event
from doa.lineage.log import Record
from doa.lineage.prov import document
from doa.lineage.render import as_dict, tree
from doa.lineage.walk import Step, Trace

FP = b"\xaa" * 8
QNAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*:[A-Za-z_][A-Za-z0-9_.-]*$")
NODES = ("entity", "activity", "agent")
# relation -> (its fields that name a node, and the kind each must be), from the W3C note
RELATIONS = {
    "wasGeneratedBy": {"prov:entity": "entity", "prov:activity": "activity"},
    "used": {"prov:activity": "activity", "prov:entity": "entity"},
    "wasDerivedFrom": {"prov:generatedEntity": "entity", "prov:usedEntity": "entity",
                       "prov:activity": "activity"},
    "wasAssociatedWith": {"prov:activity": "activity", "prov:agent": "agent"},
}
REQUIRED = {"wasGeneratedBy": {"prov:entity"}, "used": {"prov:activity"},
            "wasDerivedFrom": {"prov:generatedEntity", "prov:usedEntity"},
            "wasAssociatedWith": {"prov:activity"}}


def _rec(stream: str, offset: int, ts: int, node: str, parents: tuple[Record, ...] = (),
         model: int = 0, **fields: Any) -> Record:
    id_ = bytes([len(stream), offset % 256]) * 8
    e = Event(fields, stream=stream, partition=0, offset=offset, timestamp=ts, id=id_)
    lin = Lineage(id_, node, FP, tuple(p.event.id for p in parents), model,
                  tuple(Coordinates(p.event.stream, 0, p.event.offset) for p in parents))
    return Record(e, lin)


def _trace() -> tuple[Trace, dict[str, Record]]:
    txn = _rec("transactions", 5, 1000, "source", txn_id=5)
    feat = _rec("card_features", 5, 1000, "featurize", (txn,), txn_id=5)
    pred = _rec("predictions", 5, 1000, "scorer", (feat,), 2, join="5", model_version=2)
    model2 = _rec("models", 0, 900, "scorer", (), 0, version=2)
    label = _rec("labels", 5, 1500, "source", txn_id=5)
    outcome = _rec("outcomes", 5, 1500, "scorer", (label,), 2, join="5")
    model3 = _rec("models", 1, 1999, "scorer", (), 0, version=3)
    up = [Step("parent", feat, [Step("parent", txn)])]
    down = [Step("made by", model2),
            Step("label", label, [Step("child", outcome), Step("learned by", model3),
                                  Step("counted in", None, note="none yet")])]
    recs = {"txn": txn, "feat": feat, "pred": pred, "model2": model2, "label": label,
            "outcome": outcome, "model3": model3}
    return Trace(pred, up, down, fetches=9, seconds=0.01), recs


def _valid(doc: dict[str, Any]) -> None:
    """The structural rules of PROV-JSON that doa's documents use."""
    assert set(doc) <= {"prefix", *NODES, *RELATIONS}
    prefixes = set(doc["prefix"]) | {"prov", "xsd"}
    kinds: dict[str, str] = {}
    for kind in NODES:
        for ident, attrs in doc.get(kind, {}).items():
            assert QNAME.match(ident) and ident.split(":")[0] in prefixes, ident
            assert ident not in kinds, f"{ident} is a {kinds[ident]} and a {kind}"
            kinds[ident] = kind
            assert isinstance(attrs, dict)
            for key, value in attrs.items():
                assert QNAME.match(key) and key.split(":")[0] in prefixes, key
                if key in ("prov:endTime", "doa:timestamp"):
                    datetime.fromisoformat(value)
    for rel, fields in RELATIONS.items():
        for ident, body in doc.get(rel, {}).items():
            assert ident.startswith("_:")
            assert REQUIRED[rel] <= set(body), (rel, body)
            for key, value in body.items():
                if key in fields:
                    assert kinds.get(value) == fields[key], (rel, key, value)
                else:
                    assert key == "prov:time"
                    datetime.fromisoformat(value)


def _pairs(doc: dict[str, Any], rel: str, a: str, b: str) -> set[tuple[str, str]]:
    return {(body[a], body[b]) for body in doc.get(rel, {}).values()}


def test_prov_document_is_well_formed_and_has_the_lineage_edges() -> None:
    t, r = _trace()
    doc = json.loads(json.dumps(document(t)))
    _valid(doc)

    def ent(name: str) -> str:
        return f"doa:record-{r[name].event.id.hex()}"

    def run(name: str) -> str:
        lin = r[name].lineage
        assert lin is not None
        return f"doa:run-{lin.node}-{r[name].event.id.hex()}"

    assert set(doc["entity"]) == {ent(n) for n in r}
    derived = _pairs(doc, "wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity")
    assert derived == {(ent("pred"), ent("feat")), (ent("feat"), ent("txn")),
                       (ent("outcome"), ent("label"))}
    used = _pairs(doc, "used", "prov:activity", "prov:entity")
    assert {(run("pred"), ent("feat")), (run("feat"), ent("txn")),
            (run("outcome"), ent("label")),
            (run("outcome"), ent("pred")),  # learned on the prediction's logged features
            (run("pred"), ent("model2")),  # made by version 2
            (run("model3"), ent("label"))} == used  # version 3 learned from the label
    generated = _pairs(doc, "wasGeneratedBy", "prov:entity", "prov:activity")
    assert (ent("pred"), run("pred")) in generated
    assert doc["agent"]["doa:node-scorer"]["prov:type"] == "prov:SoftwareAgent"


def test_json_and_tree_show_every_step() -> None:
    t, _ = _trace()
    data = json.loads(json.dumps(as_dict(t, records=True)))
    assert data["record"]["parent_coordinates"] == ["card_features:0:5"]
    assert data["record"]["record"] == {"join": "5", "model_version": 2}
    assert data["record"]["model_version"] == 2
    [feat] = data["ancestry"]
    assert (feat["stream"], feat["steps"][0]["stream"]) == ("card_features", "transactions")
    label = data["descendants"][1]
    assert [s["relation"] for s in label["steps"]] == ["child", "learned by", "counted in"]
    assert label["steps"][2] == {"relation": "counted in", "note": "none yet"}
    lines = tree(t)
    assert lines[0].startswith("predictions:0:5  t=1000")
    assert any("parent: transactions:0:5" in line for line in lines)
    assert lines[-1].endswith("counted in: not found (none yet)")


def test_parse_event() -> None:
    assert parse_event("fraud.dlq:2:17") == Coordinates("fraud.dlq", 2, 17)
    assert parse_event("ab" * 16) == b"\xab" * 16


def test_a_dead_lettered_record_derives_its_letter_and_the_replay() -> None:
    txn = _rec("transactions", 5, 1000, "source", txn_id=5)
    letter = _rec("fraud.dlq", 0, 99_000, "featurize", (txn,), error_type="ValueError")
    replay = _rec("transactions", 9, 1000, "doa-dlq-replay", (letter,), txn_id=5)
    feat = _rec("card_features", 9, 1000, "featurize", (replay,), txn_id=5)
    down = [Step("dead letter", letter, [Step("replay", replay, [Step("child", feat)])],
                 note="ValueError: bad txn")]
    t = Trace(txn, [], down)
    doc = json.loads(json.dumps(document(t)))
    _valid(doc)
    ent = {n: f"doa:record-{r.event.id.hex()}" for n, r in
           {"txn": txn, "letter": letter, "replay": replay, "feat": feat}.items()}
    assert _pairs(doc, "wasDerivedFrom", "prov:generatedEntity", "prov:usedEntity") == {
        (ent["letter"], ent["txn"]), (ent["replay"], ent["letter"]),
        (ent["feat"], ent["replay"])}
    [step] = as_dict(t)["descendants"]
    assert (step["relation"], step["note"], step["steps"][0]["relation"]) == (
        "dead letter", "ValueError: bad txn", "replay")
    lines = tree(t)
    assert lines[1] == "├─ ancestry: none (a source record: no parents)"
    assert lines[3].startswith("   └─ dead letter: fraud.dlq:0:0  t=99000")
    assert lines[3].endswith("(ValueError: bad txn)")
    assert lines[4].startswith("      └─ replay: transactions:0:9  t=1000")
