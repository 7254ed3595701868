"""A model node's versions keep the type of its predictions: a classifier trained on booleans,
pickled, and its ONNX export from skl2onnx (whose labels are int64) must write the same
records, ``False``/``True`` with probabilities keyed ``"False"``/``"True"``, once the ONNX
version names its classes (``doa model publish --classes False,True``); without them,
``doa model publish`` refuses it (:func:`doa.model.compat.type_change`).
"""

from __future__ import annotations

import json
import pickle
from typing import Any

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from doa.model.artifacts import chunk_records, load_bytes
from doa.model.compat import CLASSES_KEY, type_change
from doa.model.formats import load
from doa.testing import Harness
from tests.test_model_node import FEATURES, ROWS, X, Y, by_id, run, scoring

pytest.importorskip("skl2onnx")

BOOLS = make_pipeline(StandardScaler(), LogisticRegression()).fit(X[:800], Y[:800] == 1)


def onnx_bytes(zipmap: bool) -> bytes:
    from skl2onnx import to_onnx

    return bytes(to_onnx(BOOLS, X[:1].astype(np.float32),
                         options={"zipmap": zipmap}).SerializeToString())


def version_2(zipmap: bool, classes: list[Any] | None) -> list[dict[str, Any]]:
    metadata = {} if classes is None else {CLASSES_KEY: json.dumps(classes)}
    return chunk_records("phish", 2, onnx_bytes(zipmap), fmt="onnx", chunk_bytes=4096,
                         publisher="test@here", published=0, key=None, metadata=metadata)


@pytest.mark.parametrize("zipmap", [True, False])
def test_an_onnx_export_with_its_classes_writes_what_the_pickle_wrote(zipmap: bool) -> None:
    before = by_id(run(scoring(BOOLS)))
    t = scoring(BOOLS)
    h = Harness(t, batch_size=64)
    records = version_2(zipmap, [False, True])
    for p in range(t.streams["phish.versions"].partitions):
        h.publish("phish.versions", records, partition=p, timestamps=[500] * len(records))
    h.publish("pages", ROWS, timestamps=range(len(ROWS)))
    h.run()
    after = by_id(h)
    assert {r["model_version"] for i, r in after.items() if i >= 500} == {2}
    proba, labels = BOOLS.predict_proba(X), BOOLS.predict(X).tolist()
    for i, record in after.items():
        assert record["prediction"] is before[i]["prediction"] is labels[i]
        assert list(record["probabilities"]) == ["False", "True"]
        assert np.allclose(list(record["probabilities"].values()), proba[i], atol=1e-5)


def test_publish_compares_an_onnx_exports_labels_with_the_live_pickles() -> None:
    live = load(BOOLS, node="phish", features=FEATURES)
    bare = load_bytes(onnx_bytes(True), "onnx", node="phish", version=2, features=FEATURES)
    assert type_change(bare, live, width=len(FEATURES)) == (
        "makes long predictions (classes 0, 1) where the live version makes boolean "
        "predictions (classes False, True)")
    named = load_bytes(onnx_bytes(True), "onnx", node="phish", version=2, features=FEATURES,
                       classes=[False, True])
    assert type_change(named, live, width=len(FEATURES)) is None
    again = load_bytes(pickle.dumps(BOOLS), "sklearn", node="phish", version=3,
                       features=FEATURES)
    assert type_change(again, live, width=len(FEATURES)) is None
