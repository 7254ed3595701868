"""``doa model publish`` refuses a version whose predictions would change the type of the
live version's (a boolean classifier's skl2onnx export predicts 0/1), in one line saying what
differs and how to fix it, and sends nothing; with ``--classes False,True`` it publishes it
and the classes are kept with the version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doa.engines.launch import prepare
from doa.model.compat import CLASSES_KEY
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, read_stream
from tests.test_model_node import SCHEMAS

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="CLI checks before sending; CI time")]

TOPOLOGY = f'''
from doa import Topology
from tests.test_model_node import FEATURES
from tests.test_model_types import BOOLS

topology = Topology("types", schemas={str(SCHEMAS)!r})
topology.stream("pages", schema="testing.Phish")
topology.stream("scores", schema="doa.Prediction")
topology.model("phish", reads="pages", writes="scores", model=BOOLS, features=FEATURES,
               join="id")
'''


def test_publish_refuses_an_onnx_export_that_changes_the_prediction_type(
        broker: str, tmp_path: Path) -> None:
    from tests.test_model_types import onnx_bytes

    path = tmp_path / "types_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    model = tmp_path / "phish.onnx"
    model.write_bytes(onnx_bytes(zipmap=True))
    done = doa_command("model", "publish", str(path), "phish", str(model), "--broker", broker)
    assert done.returncode == 1
    assert done.stderr.decode().splitlines() == [
        f"error: model node 'phish': version 2 ({model}) makes long predictions (classes "
        "0, 1) where live version 1 makes boolean predictions (classes False, True): stream "
        "'scores' would change type; name its classes in the live type, in its order "
        "(--classes False,True), or export labels of the live type; nothing sent"]
    done = doa_command("model", "publish", str(path), "phish", str(model), "--classes",
                       "False,True", "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    [record] = read_stream(broker, t, "phish.versions", expected=1)
    assert (record["version"], json.loads(record["metadata"][CLASSES_KEY])) == (2, [False, True])
