"""The claims story of topologies/claims.py on the embedded broker, end to end.

Claims are joined with their policies and paid by a rule (version 1); a decision tree
trained on the assessed claims and settlements collected from the streams with ``doa export``
(Parquet files joined with pandas, as a data scientist would) is published with
``doa model publish`` (version 2); a gradient-boosting model retrained on more of them is
published as a candidate (version 3), compared on the same settlements with ``doa model
compare``, and promoted by the topology's policy after 300 settlements. Every payout must
equal its version's model called in plain Python on the same rows.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.tree import DecisionTreeRegressor

from doa.client import Publisher
from doa.engines.launch import prepare, run_nodes
from doa.lineage.log import Log
from doa.lineage.walk import Step, trace
from doa.topology.loader import load_topology
from tests.integration.helpers import Tail, doa_command, read_stream

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the story is broker-independent; CI time")]

ROOT = Path(__file__).resolve().parents[2]
CLAIMS = str(ROOT / "topologies" / "claims.py")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Story:
    """The topology's nodes running in a thread, the streams it writes followed."""

    def __init__(self, broker: str) -> None:
        from topologies import claims

        self.claims = claims
        self.broker = broker
        self.t = load_topology(CLAIMS)
        prepare(self.t, broker)
        self.logs = {s: Tail(broker, s) for s in ("payouts", "payout.outcomes",
                                                  "payout.events")}
        self.stop = threading.Event()
        self.rows: dict[str, dict[str, Any]] = {}
        self.worker = threading.Thread(target=lambda: asyncio.run(run_nodes(
            self.t, broker, ["assess", "payout"], seconds=120, signals=False,
            until=lambda stats: self.stop.is_set())))
        self.worker.start()

    def file(self, start: int, n: int) -> None:
        """Claims ``start`` .. ``start + n - 1`` and their policies; wait for their payouts."""
        pairs = list(self.claims.claims(n, start=start))
        t0 = now_ms()
        with Publisher("policies", broker=self.broker, topology=self.t) as pub:
            for i, (policy, _) in enumerate(pairs):
                pub.send(policy, timestamp_ms=t0 + i)
        with Publisher("claims", broker=self.broker, topology=self.t) as pub:
            for i, (policy, claim) in enumerate(pairs):
                pub.send(claim, timestamp_ms=t0 + i)
                self.rows[claim["claim_id"]] = {**policy, **claim}
        self.wait("payouts", start + n)

    def settle(self, start: int, n: int, outcomes: int | None = None) -> None:
        """The settlements of claims ``start`` ..; wait for the outcomes."""
        with Publisher("settlements", broker=self.broker, topology=self.t) as pub:
            for policy, claim in self.claims.claims(n, start=start):
                paid = self.claims.settlement(policy, claim)
                pub.send(paid)
                self.rows[claim["claim_id"]]["paid"] = paid["paid"]
        self.wait("payout.outcomes", outcomes if outcomes is not None else start + n)

    def wait(self, stream: str, count: int, timeout: float = 60.0) -> None:
        """Until ``stream`` holds ``count`` records; ``timeout`` bounds a hang only (a run
        with load ~5.6 on 2 cores had none of 200 outcomes after 30 s)."""
        log = self.logs[stream]
        deadline = time.monotonic() + timeout
        while len(log.records) < count and time.monotonic() < deadline:
            log.poll(20)
        assert len(log.records) >= count, f"{stream}: {len(log.records)} of {count}"

    def collected(self, folder: Path) -> tuple[np.ndarray, np.ndarray]:
        """The training set as a data scientist gets it: the assessed claims and the
        settlements exported with ``doa export`` to Parquet, joined on claim_id."""
        files = {}
        for stream in ("assessed_claims", "settlements"):
            files[stream] = folder / f"{stream}.parquet"
            done = doa_command("export", CLAIMS, stream, "--out", str(files[stream]),
                               "--broker", self.broker)
            assert done.returncode == 0, done.stderr.decode()
        rows = pd.read_parquet(files["assessed_claims"]).merge(
            pd.read_parquet(files["settlements"]), on="claim_id")
        return rows[self.claims.FEATURES].to_numpy(), rows["paid"].to_numpy()

    def matrix(self, ids: list[str]) -> np.ndarray:
        return np.array([[self.rows[i][f] for f in self.claims.FEATURES] for i in ids])


def publish(path: Path, *extra: str, broker: str) -> None:
    done = doa_command("model", "publish", CLAIMS, "payout", str(path), *extra,
                       "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()


def test_the_claims_story(broker: str, tmp_path: Path) -> None:
    story = Story(broker)
    try:
        story.file(0, 400)  # the rule pays
        story.settle(0, 400)
        X, y = story.collected(tmp_path)
        assert len(X) == 400
        tree = DecisionTreeRegressor(max_depth=4, random_state=0).fit(X, y)
        joblib.dump(tree, tmp_path / "tree.joblib")
        publish(tmp_path / "tree.joblib", "--note", "tree on 400 claims", broker=broker)
        story.file(400, 400)  # the tree pays
        story.settle(400, 400)
        X, y = story.collected(tmp_path)
        assert len(X) == 800
        alone = doa_command("model", "compare", CLAIMS, "payout", "--broker", broker)
        assert alone.returncode == 0, alone.stderr.decode()
        boosted = GradientBoostingRegressor(random_state=0).fit(X, y)
        joblib.dump(boosted, tmp_path / "boosted.joblib")
        publish(tmp_path / "boosted.joblib", "--candidate", broker=broker)
        story.file(800, 400)  # the tree pays, the boosted model shadows it
        story.settle(800, 200)
        compared = doa_command("model", "compare", CLAIMS, "payout", "--broker", broker)
        assert compared.returncode == 0, compared.stderr.decode()
        table = compared.stdout.decode()
        story.settle(1000, 200)  # the 300th shared settlement promotes the candidate
        story.wait("payout.events", 3)
        story.file(1200, 100)  # the boosted model pays
    finally:
        story.stop.set()
        story.worker.join(60)
    assert not story.worker.is_alive()

    payouts = {r["join"]: r for r in read_stream(broker, story.t, "payouts", expected=1300)}
    shadow = {r["join"]: r for r in read_stream(broker, story.t, "payouts.shadow", idle_s=1)}
    models = {1: story.claims.Rule().predict_batch, 2: tree.predict, 3: boosted.predict}
    ranges = {1: range(0, 400), 2: range(400, 1200), 3: range(1200, 1300)}
    for version, ids in ranges.items():
        names = [f"c{i}" for i in ids]
        assert [payouts[c]["model_version"] for c in names] == [version] * len(names)
        expected = models[version](story.matrix(names))
        assert [payouts[c]["prediction"] for c in names] == pytest.approx(list(expected))
    names = [f"c{i}" for i in range(800, 1200)]
    assert sorted(shadow) == sorted(names)  # the candidate scored the same claims, apart
    assert [shadow[c]["prediction"] for c in names] == pytest.approx(
        list(boosted.predict(story.matrix(names))))
    events = [(e["action"], e["version"]) for e in read_stream(broker, story.t,
                                                               "payout.events", idle_s=1)]
    assert events == [("created", 2), ("candidate", 3), ("promoted", 3)]
    # Before the candidate: the live row, and a caption saying how one runs (no empty row).
    rows = [line.replace("│", " ").split() for line in alone.stdout.decode().splitlines()]
    assert [r[1] for r in rows if r[:1] == ["0"]] == ["live"], alone.stdout.decode()
    assert "no candidate runs: doa model publish --candidate" in alone.stdout.decode()
    lines = {line.split()[1]: line for line in table.replace("│", " ").splitlines()
             if line.replace("│", " ").split()[:1] == ["0"]}
    live, candidate = lines["live"].split(), lines["candidate"].split()
    assert (live[2], live[3], candidate[2], candidate[3]) == ("2", "200", "3", "200")
    assert float(candidate[4]) < float(live[4])  # MAE: the candidate pays closer to the truth

    # A payout leads to its settlement (the label), the outcome, the metric that counted it and
    # the model event of its version; the candidate's shadow payout too (doa lineage stopped
    # at the assessed claim for a model node: no descendants).
    with Log(broker, story.t) as log:
        for stream, claim, version in (("payouts", "c500", ("created", 2)),
                                       ("payouts.shadow", "c900", ("candidate", 3))):
            [e] = [e for e in read_stream(broker, story.t, stream, idle_s=1)
                   if e["join"] == claim]
            root = log.get(stream, e.partition, e.offset)
            assert root is not None
            down = {s.relation: s for s in trace(log, root).descendants}
            made = down["made by"].record
            assert made is not None and (made.event["action"], made.event["version"]) == version
            label = down["label"]
            assert label.record is not None and label.record.event["claim_id"] == claim
            under: dict[str, Step] = {s.relation: s for s in label.steps}
            outcome = under["child"].record
            assert outcome is not None and outcome.event.stream == "payout.outcomes"
            assert outcome.event["join"] == claim
            assert under["counted in"].record is not None
            assert "learned by" not in under  # a model node learns nothing from labels

    # doa dataset on the model node: one row per settlement it scored, features as the export
    # joined them with pandas above, the label the settlement's
    out = tmp_path / "payout.jsonl"
    done = doa_command("dataset", CLAIMS, "payout", "--out", str(out), "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    outcomes = read_stream(broker, story.t, "payout.outcomes", idle_s=1)
    assert len(rows) == len(outcomes) == 1200
    for row in rows:
        claim = story.rows[row["join"]]
        assert [row[f] for f in story.claims.FEATURES] == pytest.approx(
            [claim[f] for f in story.claims.FEATURES])
        assert row["label"] == pytest.approx(claim["paid"])
        assert row["model_version"] == payouts[row["join"]]["model_version"]
        assert row["learned_version"] is None

