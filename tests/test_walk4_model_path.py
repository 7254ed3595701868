"""walk4 finding 6: a relative model path resolves against the topology file's folder, like
``schemas=``, so a topology runs from any directory; a path found only in the working directory
still loads, with a one-line deprecation warning; a path found nowhere names both places."""

from __future__ import annotations

import logging
from pathlib import Path

import joblib
import pytest
from sklearn.linear_model import LinearRegression

from doa.topology.loader import load_topology

TOPOLOGY = """\
from doa import Topology
topology = Topology("pricing", schemas="schemas")
orders = topology.stream("orders", schema="pricing.Order", key="order_id")
prices = topology.stream("prices", schema="doa.Prediction", key="order_id")
topology.model("price", reads=orders, writes=prices, model="models/v1.joblib",
               features=["km"], versions=None)
"""
ORDER = ('{"type": "record", "name": "Order", "namespace": "pricing", "fields": ['
         '{"name": "order_id", "type": "string"}, {"name": "km", "type": "double"}]}')


def project(root: Path, model_in: Path | None) -> Path:
    """A topology in root/topologies with its schemas beside it, and a model in ``model_in``."""
    folder = root / "topologies"
    (folder / "schemas").mkdir(parents=True)
    (folder / "schemas" / "order.avsc").write_text(ORDER)
    (folder / "pricing.py").write_text(TOPOLOGY)
    if model_in is not None:
        (model_in / "models").mkdir(parents=True)
        joblib.dump(LinearRegression().fit([[1.0], [2.0]], [1.0, 2.0]),
                    model_in / "models" / "v1.joblib")
    return folder / "pricing.py"


def spec_of(path: Path) -> object:
    return load_topology(str(path)).nodes["price"].spec  # type: ignore[attr-defined]


def test_a_relative_model_path_resolves_against_the_topology_folder_from_any_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = project(tmp_path, tmp_path / "topologies")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    with caplog.at_level(logging.WARNING, logger="doa.model.paths"):
        spec = spec_of(path)
    assert caplog.records == []
    assert spec.model == tmp_path / "topologies" / "models" / "v1.joblib"  # type: ignore[attr-defined]
    assert spec.file_problems("price") == []  # type: ignore[attr-defined]


def test_a_model_path_found_only_in_the_working_directory_still_loads_with_a_warning(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    path = project(tmp_path, tmp_path)  # models/ beside topologies/, the old rule's place
    monkeypatch.chdir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="doa.model.paths"):
        spec = spec_of(path)
    assert len(caplog.records) == 1
    said = caplog.records[0].getMessage()
    assert "\n" not in said and "deprecated" in said and str(tmp_path / "topologies") in said
    assert spec.model == tmp_path / "models" / "v1.joblib"  # type: ignore[attr-defined]
    assert spec.file_problems("price") == []  # type: ignore[attr-defined]


def test_a_model_path_found_nowhere_names_both_places(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project(tmp_path, None)
    monkeypatch.chdir(tmp_path)
    assert spec_of(path).file_problems("price") == [  # type: ignore[attr-defined]
        f"model 'price': model file 'models/v1.joblib' does not exist in the topology's folder "
        f"{tmp_path / 'topologies'} (where relative paths resolve) nor in the working directory "
        f"{tmp_path}"]
