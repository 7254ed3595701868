"""`doa lineage` on a seeded fraud run on the broker, killed with SIGKILL half way.

A prediction's ancestry must reach exactly the transaction it came from (compared with the
seeded source), its forward lineage its label, its outcome and the model version that learned
from it; ids are stable across the kill: a prediction traced while the node is dead traces to
the same records after the restart, and a record written twice (before the kill and again on
replay) has one id whose lineage is the same.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.lineage.find import find, parse_event
from doa.lineage.log import Log
from doa.lineage.render import as_dict
from doa.lineage.walk import Step, Trace, trace
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="lineage reads single records by seek and "
                                  "fetch, alike on both brokers; one run keeps CI short")]

N = 2100
FRAUD = str(ROOT / "topologies" / "fraud.py")


def _start(address: str, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:  # a file, not a pipe nobody reads
        return subprocess.Popen(
            [sys.executable, "-m", "doa.cli.app", "run", FRAUD, "--broker", address, "-q"],
            cwd=ROOT, stdout=sink, stderr=sink, start_new_session=True,
            env={**os.environ, "DOA_SNAPSHOT_EVERY_RECORDS": "500"})


def _end(address: str, t: Any, stream: str) -> int:
    with Log(address, t) as log:
        return log.end(stream, 0)


def _wait(address: str, t: Any, stream: str, at_least: int, proc: subprocess.Popen[bytes],
          log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s  # bounds a failure only
    while _end(address, t, stream) < at_least:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{stream} did not reach {at_least} records; doa run:\n"
                                 + log.read_text()[-3000:])
        time.sleep(0.2)


def _one(steps: list[Step], relation: str) -> Step:
    [step] = [s for s in steps if s.relation == relation]
    assert step.record is not None, step.note
    return step


def _ids(steps: list[Step]) -> list[Any]:
    return [(s.relation, s.record.event.id if s.record else None, _ids(s.steps))
            for s in steps]


def _check(tr: Trace, txns: dict[int, dict[str, Any]], truth: dict[int, bool]) -> int:
    """The trace of one prediction against the seeded source; returns its txn_id."""
    pred = tr.root.event
    txn_id = int(pred["join"])
    features = _one(tr.ancestry, "parent")
    assert features.record is not None and features.record.event.stream == "card_features"
    txn = _one(features.steps, "parent")
    assert txn.record is not None and txn.steps == []  # a publisher's record: a raw input
    assert txn.record.event.stream == "transactions"
    assert dict(txn.record.event) == txns[txn_id]  # exactly the transaction it came from
    assert txn.record.lineage is not None and txn.record.lineage.parents == ()
    label = _one(tr.descendants, "label")
    assert label.record is not None
    assert dict(label.record.event) == {"txn_id": txn_id, "card_id": txns[txn_id]["card_id"],
                                        "is_fraud": truth[txn_id]}
    outcome = _one(label.steps, "child")
    assert outcome.record is not None
    o = outcome.record.event
    assert (o.stream, o["join"], o["label"]) == ("outcomes", str(txn_id), truth[txn_id])
    assert (o["prediction"], o["model_version"]) == (pred["prediction"], pred["model_version"])
    learned = _one(label.steps, "learned by").record
    assert learned is not None
    assert learned.event["action"] == "created"
    assert learned.event["version"] > pred["model_version"]
    assert learned.event.timestamp >= label.record.event.timestamp
    return txn_id


def test_lineage_of_predictions_across_a_kill9(broker: str, tmp_path: Path) -> None:
    import topologies.fraud as fraud

    t = load_topology(FRAUD)
    prepare(t, broker)
    txns: dict[int, dict[str, Any]] = {}
    truth: dict[int, bool] = {}
    pubs = {s: Publisher(s, broker=broker, topology=t, name="source")
            for s in ("transactions", "labels")}
    for stream, rec, ts in fraud.demo_source(N):
        pubs[stream].send(rec, timestamp_ms=ts)
        if stream == "transactions":
            txns[rec["txn_id"]] = rec
        else:
            truth[rec["txn_id"]] = rec["is_fraud"]
    for pub in pubs.values():
        pub.close()

    log = tmp_path / "run.log"
    proc = _start(broker, log)
    try:
        _wait(broker, t, "predictions", N // 3, proc, log)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        with Log(broker, t) as reader:  # traced while the scorer is dead
            early = trace(reader, find(reader, parse_event("predictions:0:100")))
        proc = _start(broker, log)
        _wait(broker, t, "outcomes", N, proc, log)
        _wait(broker, t, "models", 2, proc, log)  # versions after 1000 and 2000 labels
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    with Log(broker, t) as reader:
        late = trace(reader, find(reader, parse_event("predictions:0:100")))
        assert _check(late, txns, truth) == 100
        # stable ids: what the ancestry named before the restart it names after it
        assert _ids(late.ancestry) == _ids(early.ancestry)
        assert as_dict(early)["record"] == as_dict(late)["record"]
        # a prediction written after the restart
        end = reader.end("predictions", 0)
        last = trace(reader, find(reader, parse_event(f"predictions:0:{end - 600}")))
        _check(last, txns, truth)
        # a prediction written twice (before the kill and on replay): one id, one lineage
        ids = Counter(r.event.id for r in reader.scan("predictions", 0, 0))
        twice = [i for i, n in ids.items() if n > 1]
        if twice:
            copies = [r for r in reader.scan("predictions", 0, 0) if r.event.id == twice[0]]
            a, b = (trace(reader, c, forward=False) for c in copies[:2])
            assert _ids(a.ancestry) == _ids(b.ancestry)
        # the ancestry is one fetch per parent: no scan
        assert trace(reader, late.root, forward=False).fetches == 2
