"""``doa check`` refuses a kernel or a model node fed a field that is not a number, naming the
node, the feature, the field and its type: at run time every record would be a dead letter."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

import doa.testing
from doa.cli.app import cli
from doa.kernels import ewm
from doa.topology.topology import Topology

READING = {"type": "record", "name": "Reading", "namespace": "iot", "fields": [
    {"name": "sensor_id", "type": "string"},
    {"name": "ts", "type": "long"},
    {"name": "temp", "type": "double"},
    {"name": "humidity", "type": ["null", "float"], "default": None},
    {"name": "on", "type": "boolean"},
    {"name": "count", "type": "int"},
    {"name": "price", "type": {"type": "bytes", "logicalType": "decimal", "precision": 6,
                               "scale": 2}},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "status", "type": "string"},
    {"name": "level", "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]}},
]}
NUMBERS = "not a number (int, long, float, double, boolean or decimal, optionally null)"


class Mean:
    """A model scoring any number of columns."""

    def predict_batch(self, X: Any) -> Any:
        return np.asarray(X).mean(axis=1)


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    (tmp_path / "reading.avsc").write_text(json.dumps(READING))
    return tmp_path


def kernel_on(schemas: Path, field: str | None, time: str | None = "ts") -> Topology:
    t = Topology("iot", schemas=schemas)
    readings = t.stream("readings", schema="iot.Reading", key="sensor_id")
    out = t.stream("out", schema="doa.DeadLetter")  # output fields are not what is tested
    t.kernel("featurize", reads=readings, writes=out, key="sensor_id", time=time,
             features={"t": (field, ewm(alpha=0.2))})
    return t


def model_on(schemas: Path, features: list[str]) -> Topology:
    t = Topology("iot", schemas=schemas)
    readings = t.stream("readings", schema="iot.Reading", key="sensor_id")
    preds = t.stream("preds", schema="doa.Prediction", key="key")
    t.model("sk", reads=readings, writes=preds, model=Mean(), features=features,
            key="sensor_id")
    return t


def input_problems(t: Topology) -> list[str]:
    return [p for p in t.validate() if "output field" not in p]


@pytest.mark.parametrize("field", ["temp", "humidity", "on", "count", "price"])
def test_a_kernel_on_a_number_passes(schemas: Path, field: str) -> None:
    assert input_problems(kernel_on(schemas, field)) == []


@pytest.mark.parametrize(("field", "shown"), [
    ("status", "string"), ("level", "Level"), ("at", "long (timestamp-millis)")])
def test_a_kernel_on_a_field_that_is_not_a_number_is_refused_in_one_line(
        schemas: Path, field: str, shown: str) -> None:
    assert input_problems(kernel_on(schemas, field)) == [
        f"kernel 'featurize', feature 't': field {field!r} of stream 'readings' (iot.Reading) "
        f"is {shown}, {NUMBERS}"]


def test_a_kernel_time_field_that_is_not_a_number_is_refused(schemas: Path) -> None:
    assert input_problems(kernel_on(schemas, "temp", time="status")) == [
        f"kernel 'featurize', time: field 'status' of stream 'readings' (iot.Reading) is "
        f"string, {NUMBERS}"]


def test_a_kernel_value_field_missing_is_refused_without_select(schemas: Path) -> None:
    problems = input_problems(kernel_on(schemas, "tmep"))
    assert len(problems) == 1
    assert problems[0].startswith("kernel 'featurize': input field 'tmep' is not a field of "
                                  "stream 'readings'")


def test_what_the_kernel_check_refuses_the_step_cannot_take(schemas: Path) -> None:
    """The check's reason: the same topology, unchecked, dead-letters every record."""
    t = kernel_on(schemas, "status")
    t.check = lambda: None  # type: ignore[method-assign]
    h = doa.testing.Harness(t)
    h.publish("readings", [{"sensor_id": "s1", "ts": 1, "temp": 1.0, "on": True, "count": 1,
                            "price": b"\x01", "at": 0, "status": "ok", "level": "LOW"}])
    h.run()
    assert [d["message"] for d in h.dead_letters] == [
        "could not convert string to float: 'ok'"]


def test_a_model_on_numbers_passes(schemas: Path) -> None:
    assert input_problems(model_on(schemas, ["temp", "humidity", "on", "count", "price"])) == []


def test_a_model_feature_that_is_not_a_number_is_refused_in_one_line(schemas: Path) -> None:
    assert input_problems(model_on(schemas, ["temp", "status", "at"])) == [
        f"model 'sk': feature field 'status' of stream 'readings' (iot.Reading) is string, "
        f"{NUMBERS}",
        f"model 'sk': feature field 'at' of stream 'readings' (iot.Reading) is long "
        f"(timestamp-millis), {NUMBERS}"]


def test_doa_check_refuses_a_model_fed_a_string(schemas: Path, tmp_path: Path) -> None:
    module = tmp_path / "strings.py"
    module.write_text(
        "from __future__ import annotations\n"
        "from pathlib import Path\n"
        "import numpy as np\n"
        "from doa import Topology\n\n"
        "class Mean:\n"
        "    def predict_batch(self, X):\n"
        "        return np.asarray(X).mean(axis=1)\n\n"
        f"topology = Topology('iot', schemas=Path({str(schemas)!r}))\n"
        "readings = topology.stream('readings', schema='iot.Reading', key='sensor_id')\n"
        "preds = topology.stream('preds', schema='doa.Prediction', key='key')\n"
        "topology.model('sk', reads=readings, writes=preds, model=Mean(),\n"
        "               features=['temp', 'status'])\n")
    result = CliRunner().invoke(cli, ["check", str(module)])
    assert result.exit_code != 0
    assert ("model 'sk': feature field 'status' of stream 'readings' (iot.Reading) is string"
            in result.output), result.output
