"""Two messages of the IoT walk: an anomaly detector named with its article, and the dataset of
a learner declared without labels pointing at its predictions."""

from __future__ import annotations

from pathlib import Path

import pytest
from river import anomaly, metrics, preprocessing

from doa.collect.dataset import learner_spec
from doa.errors import DoaError
from doa.learner.checks import kinds
from doa.topology.loader import load_topology

TOPOLOGY = '''
from river import anomaly, preprocessing
from doa import Topology
from doa.learner.spec import Inputs, Outputs
topology = Topology("nolab", dead_letters="nolab.dlq", schemas={schemas!r})
feats = topology.stream("features", schema="doa.Prediction", key="key")
scores = topology.stream("scores", schema="doa.Prediction", key="key")
topology.learner("hst", model=preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=1),
                 reads=Inputs(feats, None, join="join", key="key", feature_fields=("score",)),
                 writes=Outputs(scores))
'''


def test_an_anomaly_detector_with_a_classification_metric_is_named_with_its_article() -> None:
    model = preprocessing.MinMaxScaler() | anomaly.HalfSpaceTrees(seed=1)
    with pytest.raises(ValueError) as raised:
        kinds("hst", model, metrics.Accuracy())
    assert "is an anomaly detector;" in str(raised.value), raised.value
    assert " a anomaly" not in str(raised.value)


def test_the_dataset_of_a_learner_without_labels_points_at_its_predictions(
        tmp_path: Path) -> None:
    schemas = Path(__file__).resolve().parents[2] / "schemas"
    path = tmp_path / "nolab.py"
    path.write_text(TOPOLOGY.format(schemas=str(schemas)))
    with pytest.raises(DoaError) as raised:
        learner_spec(load_topology(str(path)), "hst")
    assert str(raised.value) == (
        "learner 'hst' learns without labels (it scores each record, then learns on it): it "
        "has no outcomes to make a dataset of; its predictions are the record of what it saw: "
        "`doa export TOPOLOGY scores`")
