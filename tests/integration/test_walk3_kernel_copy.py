"""``doa deploy`` refuses a kernel node that would copy an input field its output lacks.

The walk's case: a kernel node without ``select=`` copies every input field to its output;
``humidity`` (with a default) was added to the input's schema only, ``doa deploy`` registered
it, and every record the node read was a dead letter (``field MachineFeatures.humidity is not
in the schema``). Now deploy (and ``doa check --broker``) refuses that in one line before
registering anything, while the node of the old version runs; the fixed version (the field in
the output too, with a default) deploys, and the running node reads records of the new input
version into its own schema: its outputs, no dead letter.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from doa.catalog.read import read_topologies
from doa.client import Publisher
from doa.cluster.registry import read_registry
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process
from tests.integration.helpers import doa_command, one_line, read_stream, wait_until

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the refusal is the topology's own check, "
                                                  "before the broker is asked; CI time")]

BASE = [{"name": "machine_id", "type": "string"}, {"name": "ts", "type": "long"},
        {"name": "temperature", "type": "double"}]
MADE = [{"name": f"temp_{o}", "type": "double"} for o in ("mean", "var", "zscore")]
HUMIDITY = {"name": "humidity", "type": "double", "default": 0.0}
TOPOLOGY = '''
from doa import Topology
from doa.kernels import ewm

topology = Topology("machines", dead_letters="machines.dlq", schemas="schemas")
readings = topology.stream("readings", schema="iot.MachineReading", key="machine_id")
features = topology.stream("machine_features", schema="iot.MachineFeatures", key="machine_id")
topology.kernel("featurize", reads=readings, writes=features, key="machine_id", time="ts",
                features={"temp": ("temperature", ewm(alpha=0.1))})
'''


def version(root: Path, name: str, reading: list[dict[str, Any]],
            features: list[dict[str, Any]]) -> str:
    d = root / name
    (d / "schemas").mkdir(parents=True)
    for schema, fields in (("MachineReading", reading), ("MachineFeatures", features)):
        (d / "schemas" / f"{schema}.avsc").write_text(json.dumps(
            {"type": "record", "name": schema, "namespace": "iot", "fields": fields}))
    (d / "machines.py").write_text(TOPOLOGY)
    return str(d / "machines.py")


def test_deploy_refuses_a_kernel_copying_a_field_its_output_lacks(broker: str,
                                                                   tmp_path: Path) -> None:
    v1 = version(tmp_path, "v1", BASE, [*BASE, *MADE])
    lacking = version(tmp_path, "lacking", [*BASE, HUMIDITY], [*BASE, *MADE])
    fixed = version(tmp_path, "fixed", [*BASE, HUMIDITY], [*BASE, *MADE, HUMIDITY])
    assert doa_command("deploy", v1, "--broker", broker).returncode == 0
    node = doa_process("run", v1, "--broker", broker, env={"DOA_HEARTBEAT_S": "1"})
    try:
        assert wait_until(lambda: read_topologies(broker).described(), 60), \
            "the node never described itself"
        for command in ("deploy", "check"):
            done = doa_command(command, lacking, "--broker", broker)
            assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()
            said = done.stderr.decode().strip().splitlines()
            if command == "check":  # and that the broker's checks wait for the fix (walk 6)
                assert said[-1] == (f"note: not checked against {broker} (the registered "
                                    "schema versions, partitions, running nodes) until the "
                                    "problems above are fixed"), said
                said = said[:-1]
            line = one_line(("\n".join(said) + "\n").encode())
            assert ("kernel 'featurize' copies every field of its input stream 'readings' "
                    "(iot.MachineReading) to its output: output field 'humidity' is not a "
                    "field of stream 'machine_features' (iot.MachineFeatures), so every record "
                    "would be a dead letter; add 'humidity' to iot.MachineFeatures, with a "
                    "default, or give the kernel select=['machine_id', 'ts', 'temperature']"
                    ) in line, line
        assert [v.version for v in read_registry(broker)["readings"]] == [1], "nothing registered"

        done = doa_command("deploy", fixed, "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        assert [v.version for v in read_registry(broker)["readings"]] == [1, 2]
        new = load_topology(fixed)
        with Publisher("readings", broker=broker, topology=new) as pub:
            pub.send({"machine_id": "m0", "ts": 1000, "temperature": 60.0, "humidity": 0.4})
        [out] = read_stream(broker, new, "machine_features", 1, idle_s=30)
        assert out["temperature"] == 60.0 and out["humidity"] == 0.0  # the v1 node's output
        assert read_stream(broker, None, "machines.dlq", idle_s=1) == []
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
