"""The demo scores a regressor by its mean absolute error, never by an accuracy: a regressor's
outcome has no ``correct``, and its ``error`` is ``|y - y_pred|`` (1 - mean(error) printed
``accuracy -2570.5%``)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

from rich.console import Console

from doa.demo.live import MAE, LiveView, Track
from doa.demo.run import run_memory_demo
from doa.demo.summary import summary
from doa.events import Event

FEATURES = {"type": "record", "name": "Features", "namespace": "r", "fields": [
    {"name": "seq", "type": "long"}, {"name": "x", "type": "double"}]}
LABEL = {"type": "record", "name": "Label", "namespace": "r", "fields": [
    {"name": "seq", "type": "long"}, {"name": "y", "type": "double"}]}
MODULE = '''
from __future__ import annotations
from pathlib import Path
from river import linear_model, metrics
from doa import Topology
from doa.learner.spec import Inputs, Outputs

topology = Topology("reg", schemas=Path(__file__).parent)
features = topology.stream("features", schema="r.Features")
labels = topology.stream("labels", schema="r.Label")
preds = topology.stream("preds", schema="doa.Prediction", key="key")
outcomes = topology.stream("outcomes", schema="doa.Outcome", key="key")
topology.learner("regress", model=linear_model.LinearRegression(), metric=metrics.MAE(),
                 reads=Inputs(features, labels, join="seq", label="y", feature_fields=["x"]),
                 writes=Outputs(preds, outcomes=outcomes))


def demo_source(n, seed=7):
    for i in range(n):
        yield "features", {"seq": i, "x": float(i % 10)}, 1_000 * i
        yield "labels", {"seq": i, "y": 100.0 * (i % 10)}, 1_000 * i + 500
'''


def regression_track(errors: list[float]) -> Track:
    track = Track({"outcomes": "outcome"})
    for i, error in enumerate(errors):
        track.add(Event({"join": str(i), "model": "r", "model_version": 1, "prediction": 1.0,
                         "label": 1.0 + error, "correct": None, "error": error},
                        stream="outcomes", partition=0, offset=i, timestamp=0))
    return track


def rendered(renderables: list[object]) -> str:
    console = Console(file=io.StringIO(), width=200)
    for r in renderables:
        console.print(r)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


def test_the_summary_gives_a_regressors_mean_absolute_error() -> None:
    track = regression_track([10.0] * 50 + [40.0] * 50)
    out = rendered(summary(track, [50], 100))
    assert "summary: 100 predictions met their label, mean absolute error 25 overall" in out
    assert "mean absolute error around the drift points (16 events each)" in out
    row = next(line.split() for line in out.splitlines() if line.strip().startswith("50"))
    assert row[1:4] == ["10", "40", "40"]  # before, after, recovered
    assert "accuracy" not in out and "%" not in out


def test_the_live_line_gives_a_regressors_mean_absolute_error() -> None:
    track = regression_track([3.0, 5.0])
    topology = SimpleNamespace(name="t", nodes={})
    view = LiveView(topology, track, Console(file=io.StringIO()), seconds=1)
    assert "mean absolute error (last 500) 4 |" in view.status_line()
    assert "accuracy" not in view.status_line()
    assert track.rolling(MAE) == 4.0 and track.rolling() is None


def test_classifiers_keep_their_accuracy_beside_a_regressor() -> None:
    track = regression_track([3.0])
    track.add(Event({"join": "7", "model": "c", "model_version": 1, "prediction": True,
                     "label": True, "correct": True, "error": 0.0},
                    stream="outcomes", partition=0, offset=1, timestamp=0))
    out = rendered(summary(track, [], 10))
    assert "2 predictions met their label, accuracy 100.0%, mean absolute error 3 overall" in out


def test_the_memory_demo_of_a_regressor(tmp_path: Path) -> None:
    (tmp_path / "features.avsc").write_text(json.dumps(FEATURES))
    (tmp_path / "label.avsc").write_text(json.dumps(LABEL))
    (tmp_path / "reg.py").write_text(MODULE)
    buffer = io.StringIO()
    run_memory_demo(str(tmp_path / "reg.py"), 300, Console(file=buffer, width=160))
    out = buffer.getvalue()
    found = re.search(r"summary: ([\d,]+) predictions met their label, mean absolute error "
                      r"([\d.]+) overall", out)
    assert found, out
    assert int(found[1].replace(",", "")) == 300 and float(found[2]) > 0
    assert "accuracy" not in out
