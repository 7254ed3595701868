"""``doa dataset`` on a seeded run of the fraud demo: the rows are what the learner learned on.

One ``doa demo --records 3000`` run on the embedded broker (the README's steps) feeds every
test here. The reference is computed from the seeded inputs alone: the features with River's
``stats.EWMean``/``EWVar`` and a plain window count (not doa's Numba kernels), the order of
learning with River's ``stream.simulate_qa`` (labels 500 ms of event time after their
transactions), and the predictions by a River Hoeffding tree replayed in that order.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import re
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doa.local.embedded import EmbeddedBroker
from tests.integration.conftest import ROOT
from tests.integration.helpers import doa_command, read_stream

pytestmark = pytest.mark.broker

N = 3000
INTS = ("age", "elevel", "car", "zipcode", "hyears")  # int fields of fraud.CardFeatures
RAW = ("amount", "salary", "commission", "age", "elevel", "car", "zipcode", "hvalue", "hyears")


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    """A broker holding one seeded fraud demo run of N transactions (seed 7)."""
    with EmbeddedBroker() as b:
        done = doa_command("demo", "topologies/fraud.py", "--records", str(N), "--for", "90",
                           "--broker", b.address, timeout=180)
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        yield b.address


def reference() -> tuple[list[tuple[int, dict[str, float], bool]], dict[int, dict[str, Any]]]:
    """From the seeded inputs: (txn_id, features, label) in the order River's simulate_qa
    reveals the labels, and each transaction's features with its ``ts``."""
    from river import stats, stream

    from topologies.fraud import demo_source

    labels: dict[int, bool] = {}
    xs: dict[int, dict[str, Any]] = {}
    mean: dict[str, Any] = {}
    var: dict[str, Any] = {}
    recent: dict[str, deque[int]] = defaultdict(deque)
    for name, record, _ in demo_source(N, seed=7):
        if name == "labels":
            labels[record["txn_id"]] = record["is_fraud"]
            continue
        card, amount, ts = record["card_id"], record["amount"], record["ts"]
        if card not in mean:
            zscore = 0.0
            mean[card], var[card] = stats.EWMean(0.1), stats.EWVar(0.1)
        else:
            m, v = mean[card].get(), var[card].get()
            zscore = (amount - m) / math.sqrt(v) if v > 1e-14 * (v + m * m) else 0.0
        mean[card].update(amount)
        var[card].update(amount)
        window = recent[card]
        window.append(ts)
        while window[0] <= ts - 10_000:
            window.popleft()
        xs[record["txn_id"]] = {**{f: float(record[f]) for f in RAW},
                                "spend_zscore": zscore, "velocity_per_s": len(window) / 10.0,
                                "ts": ts}
    pairs = [(i, xs[i], labels[i]) for i in range(N)]
    delay = 500  # fraud.LABEL_DELAY transactions at fraud.RATE per second, in ms
    learned = [(i, {k: v for k, v in x.items() if k != "ts"}, y)
               for i, x, y in stream.simulate_qa([(x, y) for _, x, y in pairs], moment="ts",
                                                 delay=delay) if y is not None]
    return learned, xs


def test_rows_are_the_pairs_the_learner_learned_on_in_order(demo: str) -> None:
    import doa.dataset
    from doa.topology.loader import load_topology
    from topologies.fraud import MODEL_FEATURES

    t = load_topology("topologies/fraud.py")
    table = doa.dataset.read(t, "scorer", broker=demo)
    rows = table.to_pylist()
    learned, _ = reference()
    assert len(rows) == len(learned) == N
    assert [int(r["join"]) for r in rows] == [i for i, _, _ in learned]
    for row, (i, x, y) in zip(rows, learned, strict=True):
        assert row["label"] is y, i
        got = {f: row[f] for f in MODEL_FEATURES}
        assert got == pytest.approx(x, rel=1e-9, abs=1e-12), i
    assert table.column_names[:9] == ["outcome_id", "prediction_id", "features_id", "label_id",
                                      "predicted_at", "learned_at", "partition", "join", "key"]
    assert len({r["outcome_id"] for r in rows}) == len({r["prediction_id"] for r in rows}) == N
    assert all(r["learned_at"] > r["predicted_at"] for r in rows)

    # Each model version the learner published equals a River Hoeffding tree trained on the
    # rows, in their order, since the last reset (the order of predictions and labels in a
    # live run depends on timing; what a model learns, and in which order, does not).
    from river import tree

    from doa.learner.versions import load_model

    events = read_stream(demo, t, "models", idle_s=1)
    assert {e["action"] for e in events} <= {"created", "reset", "drift_ignored"}
    checked, since = 0, 0
    for e in events:
        if e["action"] == "reset":
            since = e["labels"]
        elif e["action"] == "created":
            model = tree.HoeffdingTreeClassifier(grace_period=100, max_depth=3)
            for row in rows[since:e["labels"]]:
                model.learn_one(as_read(row), row["label"])
            published = load_model(e, env={})
            assert (published.n_nodes, published.height) == (model.n_nodes, model.height)
            for row in rows:  # the same tree, the same leaf statistics: the same answers
                x = as_read(row)
                assert published.predict_proba_one(x) == model.predict_proba_one(x), e
            checked += 1
    assert checked >= 2

    # learned_version: the first version created after the row's label, unless a reset came
    # between (then no version holds it).
    marks = sorted((e["labels"], e["action"] != "created", e["version"]) for e in events
                   if e["action"] != "drift_ignored")
    for k, row in enumerate(rows, start=1):
        after = [(n, reset, v) for n, reset, v in marks if n >= k]
        want = None if not after or after[0][1] else after[0][2]
        assert row["learned_version"] == want, k
    assert {r["learned_version"] for r in rows} - {None}


def as_read(row: dict[str, Any]) -> dict[str, Any]:
    """A row's features as the learner read them: a prediction logs every number as a
    double; CardFeatures' int fields were ints."""
    from topologies.fraud import MODEL_FEATURES

    return {f: int(row[f]) if f in INTS else row[f] for f in MODEL_FEATURES}


def test_cli_csv_and_parquet_equal_the_python_table(demo: str, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    import doa.dataset

    table = doa.dataset.read("topologies/fraud.py", "scorer", broker=demo)
    for name in ("scorer.csv", "scorer.parquet"):
        said = invoke("dataset", "topologies/fraud.py", "scorer", "--broker", demo,
                      "--out", str(tmp_path / name))
        assert re.search(rf"wrote 3,000 rows of learner 'scorer' \(11 features\) to .*{name}",
                         said), said
    assert pq.read_table(tmp_path / "scorer.parquet").equals(table)
    with open(tmp_path / "scorer.csv", newline="", encoding="utf-8") as f:
        parsed = list(csv.DictReader(f))
    expected = table.to_pylist()
    assert list(parsed[0]) == table.column_names
    for got, want in zip(parsed, expected, strict=True):
        assert float(got["amount"]) == want["amount"]
        assert got["label"] == ("true" if want["label"] else "false")
        assert got["prediction"] == ("" if want["prediction"] is None
                                     else str(want["prediction"]).lower())
        assert got["learned_at"] == want["learned_at"].isoformat()
        assert got["outcome_id"] == want["outcome_id"]
        assert int(got["model_version"]) == want["model_version"]


def test_bounds_select_outcomes_by_offset_and_time(demo: str) -> None:
    import doa.dataset

    table = doa.dataset.read("topologies/fraud.py", "scorer", broker=demo, start=100, end=250)
    assert [int(j) for j in table.column("join").to_pylist()] == list(range(100, 250))
    everything = doa.dataset.read("topologies/fraud.py", "scorer", broker=demo).to_pylist()
    at = everything[400]["learned_at"]
    later = doa.dataset.read("topologies/fraud.py", "scorer", broker=demo, start=at)
    assert later.num_rows == sum(r["learned_at"] >= at for r in everything)
    assert later.to_pylist()[0]["learned_version"] == everything[400]["learned_version"]


def invoke(*args: str) -> str:
    """Run ``doa ARGS`` in this process (click's runner: no second import of river); what
    it said on stderr. DOA_BROKER is the environment's."""
    from click.testing import CliRunner

    from doa.cli.app import cli

    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stderr


def readme_section() -> str:
    text = (ROOT / "README.md").read_text()
    start = text.index("### Collect a training set")
    return text[start:text.index("\n## ", start)]


def test_readme_dataset_snippet_runs_as_shown(demo: str, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    section = readme_section()
    code = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```text\n(.*?)```", section, re.S)
    assert code is not None and shown is not None
    lines = code[1].strip().splitlines()
    assert len(lines) == 3, "three lines"
    monkeypatch.setenv("DOA_BROKER", demo)
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code[1], "README.md", "exec"), {})
    assert out.getvalue().strip() == shown[1].strip()
    # and the commands of the section, as written (DOA_BROKER set, files in tmp_path)
    commands = [line.split()[1:] for line in re.findall(r"^\$ (doa .+)$", section, re.M)]
    commands = [c for c in commands if c[0] in ("dataset", "export")]
    assert [c[0] for c in commands] == ["dataset", "export"]
    for args in commands:
        said = invoke(*[str(tmp_path / a) if a.endswith((".parquet", ".jsonl", ".csv")) else a
                        for a in args])
        assert re.match(r"(wrote 3,000 rows|exported 3,000 records) ", said), said
