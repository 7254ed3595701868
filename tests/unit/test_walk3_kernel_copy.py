"""A kernel node copies input fields its output schema lacks: ``doa check`` refuses it.

The walk's case: without ``select=`` a kernel node copies every input field to its output.
``humidity`` (double, default 0.0) was added to the input's schema ``iot.MachineReading``, a
compatible change, and not to the output's ``iot.MachineFeatures``: ``doa check --broker``
said ok, ``doa deploy`` registered it, and ``doa run`` dead-lettered 50 of 50 records (``field
MachineFeatures.humidity is not in the schema``). Now the topology's own check (``doa check``,
and so ``doa check --broker``, ``doa run`` and ``doa deploy``) refuses it in one line naming
node, both streams and schemas, the field and the fix. A node running with the old input
schema is not concerned: a record of the newer version resolves into its own schema (the
field is not there to copy), so its outputs still encode.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from doa.events import Event
from doa.kernels import ewm
from doa.topology.topology import Topology

BASE = [{"name": "machine_id", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "temperature", "type": "double"}]
HUMIDITY = {"name": "humidity", "type": "double", "default": 0.0}
MADE = [{"name": f"temp_{o}", "type": "double"} for o in ("mean", "var", "zscore")]


def machines(root: Path, reading: list[dict[str, Any]], features: list[dict[str, Any]],
             select: list[str] | None = None) -> Topology:
    root.mkdir(parents=True, exist_ok=True)
    for name, fields in (("MachineReading", reading), ("MachineFeatures", features)):
        (root / f"{name}.avsc").write_text(json.dumps(
            {"type": "record", "name": name, "namespace": "iot", "fields": fields}))
    t = Topology("machines", schemas=root)
    readings = t.stream("readings", schema="iot.MachineReading", key="machine_id")
    out = t.stream("machine_features", schema="iot.MachineFeatures", key="machine_id")
    t.kernel("featurize", reads=readings, writes=out, key="machine_id", time="ts",
             features={"temp": ("temperature", ewm(alpha=0.1))}, select=select)
    return t


def test_check_refuses_a_copied_field_the_output_lacks(tmp_path: Path) -> None:
    t = machines(tmp_path, [*BASE, HUMIDITY], [*BASE, *MADE])
    assert t.validate() == [
        "kernel 'featurize' copies every field of its input stream 'readings' "
        "(iot.MachineReading) to its output: output field 'humidity' is not a field of stream "
        "'machine_features' (iot.MachineFeatures), so every record would be a dead letter; add "
        "'humidity' to iot.MachineFeatures, with a default, or give the kernel "
        "select=['machine_id', 'ts', 'temperature'] (the input fields to copy)"]


def test_check_refuses_a_selected_field_the_output_lacks(tmp_path: Path) -> None:
    t = machines(tmp_path, [*BASE, HUMIDITY], [BASE[0], *MADE],
                 select=["machine_id", "ts", "humidity"])
    assert t.validate() == [
        "kernel 'featurize' copies the selected fields of its input stream 'readings' "
        "(iot.MachineReading) to its output: output fields 'ts' and 'humidity' are not fields "
        "of stream 'machine_features' (iot.MachineFeatures), so every record would be a dead "
        "letter; add 'ts' and 'humidity' to iot.MachineFeatures, with a default, "
        "or leave them out of select"]


@pytest.mark.parametrize("features, select", [
    ([*BASE, *MADE, HUMIDITY], None),  # the field added to the output too
    ([*BASE, *MADE], ["machine_id", "ts", "temperature"]),  # or not copied
    ([BASE[0], *MADE], []),  # nothing copied
])
def test_either_fix_passes(tmp_path: Path, features: list[dict[str, Any]],
                           select: list[str] | None) -> None:
    assert machines(tmp_path, [*BASE, HUMIDITY], features, select).validate() == []


def test_a_running_node_reads_a_newer_input_version_into_its_own_schema(
        tmp_path: Path) -> None:
    old = machines(tmp_path / "v1", BASE, [*BASE, *MADE])
    new = machines(tmp_path / "v2", [*BASE, HUMIDITY], [*BASE, *MADE, HUMIDITY])
    old.add_history("readings", [new.codec("readings").schema])  # as reread() does
    data = new.codec("readings").encode(
        {"machine_id": "m0", "ts": 1000, "temperature": 60.0, "humidity": 0.4})
    record = old.codec("readings").decode(data)
    assert record == {"machine_id": "m0", "ts": 1000, "temperature": 60.0}
    node = old.nodes["featurize"]
    event = Event(record, stream="readings", partition=0, offset=0, timestamp=1000)
    _, [(_, out)] = node.step(node.state(), [event])
    old.codec("machine_features").encode(out)  # no dead letter


def test_check_refuses_a_copied_field_the_output_cannot_hold(tmp_path: Path) -> None:
    """Walk 8: the input's field became a string, the output's stayed a double: `doa check`
    said ok and every record was a dead letter (``expected double, got str``). A type the
    output holds (an int into a long, a value into its nullable union) passes."""
    zone = {"name": "zone", "type": "string"}
    t = machines(tmp_path, [*BASE, zone], [*BASE, {"name": "zone", "type": "double"}, *MADE])
    assert t.validate() == [
        "kernel 'featurize' copies field 'zone' of its input stream 'readings' "
        "(iot.MachineReading), a string, to its output: stream 'machine_features' "
        "(iot.MachineFeatures) has it as double, which cannot hold it, so every record would "
        "be a dead letter; give both the same type, or leave it out of select"]
    count = {"name": "count", "type": "int"}
    held = machines(tmp_path / "held", [*BASE, count, zone],
                    [*BASE, {"name": "count", "type": "long"},
                     {"name": "zone", "type": ["null", "string"]}, *MADE])
    assert held.validate() == []
