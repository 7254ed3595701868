"""``doa model publish --candidate`` while a candidate runs says which one it replaces, and
``doa model promote`` / ``rollback`` write who sent them and when on the versions stream."""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import pytest

from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, read_stream
from tests.test_model_versions import SCHEMAS, Scaled

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the CLI reads and writes the versions "
                                                  "stream alike on both; CI time")]

TOPOLOGY = f'''
from doa import Topology
from tests.test_model_versions import Scaled

topology = Topology("replace", schemas={str(SCHEMAS)!r})
for name, schema in (("pages", "testing.Phish"), ("scores", "doa.Prediction"),
                     ("shadow", "doa.Prediction"), ("events", "doa.ModelEvent")):
    topology.stream(name, schema=schema)
topology.model("m", reads="pages", writes="scores", model=Scaled(1.0),
               features=["age_of_domain", "https"], join="id", shadow="shadow",
               models="events")
'''


def test_publish_says_which_candidate_it_replaces_and_commands_are_stamped(
        broker: str, tmp_path: Path) -> None:
    path = tmp_path / "replace_topology.py"
    path.write_text(TOPOLOGY)
    t = load_topology(str(path))
    prepare(t, broker)
    model = tmp_path / "scaled.pkl"
    model.write_bytes(pickle.dumps(Scaled(2.0)))
    said = []
    for _ in range(2):
        done = doa_command("model", "publish", str(path), "m", str(model), "--candidate",
                           "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
        said.append(done.stdout.decode())
    assert "version 2 of m (candidate) on m.versions;" in said[0]
    assert "version 3 of m (candidate) on m.versions, replacing candidate version 2;" in said[1]
    before = time.time_ns() // 1_000_000
    for command in (("promote", str(path), "m"), ("rollback", str(path), "m", "1")):
        done = doa_command("model", *command, "--broker", broker)
        assert done.returncode == 0, done.stderr.decode()
    records = read_stream(broker, t, "m.versions", expected=4)
    assert [(r["action"], r["version"]) for r in records] == [
        ("publish", 2), ("publish", 3), ("promote", 3), ("rollback", 1)]
    listed = doa_command("model", "list", str(path), "m", "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    rows = [" ".join(line.replace("│", " ").split())
            for line in listed.stdout.decode().splitlines()]
    assert any(line.startswith("3 promote False") for line in rows), rows
    publisher = records[0]["publisher"]
    assert "@" in publisher
    for r in records[2:]:
        assert r["publisher"] == publisher and before <= r["published"] <= time.time() * 1000
