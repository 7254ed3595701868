"""``doa compose`` in a user's own project, for real: Dockerfile.doa, doa's wheel, docker compose.

A project made in a temporary folder outside doa's repository, as a user would have it: its
topology module in a sub-folder (``pipelines/iot.py``, importing a sibling module of its
package), its schemas in a folder of their own that the topology names (``schemas="../avro"``),
and a ``requirements.txt`` whose package the topology imports. ``doa compose`` runs there from
this virtualenv (doa installed from its source directory: the wheel is built with
``pip wheel``), then ``docker compose build``, ``up -d --wait``, readings published from a
container of the project's image, the node's alerts read back, ``down -v``.

The Docker engine and its images come from ``.ci/docker-prepare`` (as for test_compose.py,
whose ``engine`` fixture this reuses). To keep CI short the builds' ``BASE_IMAGE`` are the
images that script built: ``doa`` (a venv with doa's dependencies in /opt/venv) for the app,
``doa-kafka`` (the same, Java, and Kafka's jars in /opt/kafka) for Kafka, so every step of
Dockerfile.doa runs (doa's wheel and the project's requirements are installed, the JRE and
Maven steps run apt) without downloading doa's dependencies or Kafka again (~40 s rather
than ~3 min cold). A cold build from a plain Debian base runs the same file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_compose import _env, engine

pytestmark = pytest.mark.broker

__all__ = ["engine"]  # the fixture, shared with test_compose.py

PROJECT = "doa-compose-project-test"
# .ci/docker-prepare's images as BASE_IMAGE: doa's dependencies in /opt/venv (and for kafka,
# Java and Kafka's jars); the app's base is doa:latest, which has no HEALTHCHECK to inherit.
WARM_BASE = {"prepare": "doa:latest", "kafka": "doa-kafka:latest"}
N = 400  # readings; every 4th is hot
DOA = Path(sys.executable).with_name("doa")

TOPOLOGY = '''\
from __future__ import annotations

from doa.topology.topology import Topology
from pipelines.rules import HOT

topology = Topology("iot", schemas="../avro")
readings = topology.stream("readings", schema="reading", key="sensor_id", partitions=2)
alerts = topology.stream("alerts", schema="alert", key="sensor_id")


@topology.node(reads=readings, writes=alerts)
def flag_hot(state, batch):
    import humanize  # the project's own dependency (requirements.txt): in the image only

    out = [(r, {"sensor_id": r["sensor_id"], "celsius": r["celsius"],
                "note": humanize.intcomma(int(r["celsius"] * 1000)) + " mC"})
           for r in batch if r["celsius"] > HOT]
    return state, out
'''
READING = {"type": "record", "name": "reading", "fields": [
    {"name": "sensor_id", "type": "string"}, {"name": "celsius", "type": "double"}]}
ALERT = {"type": "record", "name": "alert", "fields": [
    {"name": "sensor_id", "type": "string"}, {"name": "celsius", "type": "double"},
    {"name": "note", "type": "string"}]}
CHECK = '''\
import json, sys, time
from doa.client import Publisher, Subscriber
from doa.topology.loader import load_topology

n = int(sys.argv[1])
t = load_topology("pipelines/iot.py")  # in /app, as on the host
with Publisher("readings", broker="kafka:9092", topology=t) as pub:
    for i in range(n):
        pub.send({"sensor_id": f"s{i % 5}", "celsius": 40.5 if i % 4 == 0 else 20.0})
alerts, deadline = [], time.monotonic() + 120
while len(alerts) < n // 4 and time.monotonic() < deadline:
    with Subscriber(["alerts"], broker="kafka:9092", topology=t, from_beginning=True,
                    idle_timeout_s=2.0) as sub:
        alerts = [dict(e) for e in sub]
print(json.dumps({"alerts": len(alerts), "notes": sorted({a["note"] for a in alerts}),
                  "schema_dir": str(t.schema_dir.resolve())}))
'''


def make_project(root: Path) -> Path:
    """A user's project: pipelines/ (the topology and a sibling module), avro/, requirements."""
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "__init__.py").write_text("")
    (root / "pipelines" / "rules.py").write_text("HOT = 30.0\n")
    (root / "pipelines" / "iot.py").write_text(TOPOLOGY)
    (root / "avro").mkdir()
    (root / "avro" / "reading.avsc").write_text(json.dumps(READING))
    (root / "avro" / "alert.avsc").write_text(json.dumps(ALERT))
    (root / "requirements.txt").write_text("humanize\n")
    (root / "Dockerfile").write_text("FROM scratch\n")  # the project's own: left alone
    return root


def compose(root: Path, *args: str, timeout: float = 300.0, stdin: str | None = None,
            check: bool = True, base: str = "doa:latest") -> str:
    """``docker compose -p PROJECT ARGS`` in the project; its stdout."""
    done = subprocess.run(["docker", "compose", "-p", PROJECT, *args], cwd=root,
                          env={**_env(), "DOA_BASE_IMAGE": base}, input=stdin,
                          capture_output=True, text=True, timeout=timeout, check=False)
    if check and done.returncode != 0:
        logs = subprocess.run(["docker", "compose", "-p", PROJECT, "logs", "--tail", "15"],
                              cwd=root, env=_env(), capture_output=True, text=True,
                              timeout=60, check=False).stdout
        raise AssertionError(f"docker compose {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.strip()[-800:]}\n{logs}")
    return done.stdout


@pytest.fixture
def project(engine: None, tmp_path: Path) -> Iterator[tuple[Path, dict[str, float]]]:
    """The project, with ``doa compose`` run in it; ``down -v`` afterwards. Phase seconds."""
    root = make_project(tmp_path / "iot-project")
    times: dict[str, float] = {}
    began = time.monotonic()
    made = subprocess.run([str(DOA), "compose", "pipelines/iot.py", "--out",
                           "docker-compose.yml"], cwd=root, capture_output=True, text=True,
                          timeout=300, check=False)
    assert made.returncode == 0, made.stderr
    times["doa compose"] = time.monotonic() - began
    try:
        yield root, times
    finally:
        compose(root, "down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        print("compose project phases (s):", {k: round(v, 1) for k, v in times.items()})


def test_a_users_project_builds_and_runs(project: tuple[Path, dict[str, float]]) -> None:
    root, times = project
    assert (root / "Dockerfile").read_text() == "FROM scratch\n"
    assert sorted(p.name for p in (root / ".doa" / "dist").iterdir()) == [
        "doa-0.1.0-py3-none-any.whl"]
    began = time.monotonic()
    for service, base in WARM_BASE.items():  # the app image, then kafka's
        compose(root, "--progress", "plain", "build", service, timeout=600, base=base)
    times["build"] = time.monotonic() - began
    services = [s for s in compose(root, "config", "--services").split() if s != "ui"]
    compose(root, "up", "-d", "--wait", "--no-build", *services, timeout=300)
    times["up"] = time.monotonic() - began
    out = compose(root, "run", "--rm", "-T", "--no-deps", "--entrypoint", "python",
                  "flag_hot", "-", str(N), stdin=CHECK, timeout=300)
    times["checked"] = time.monotonic() - began
    result = json.loads(out.strip().splitlines()[-1])
    assert result == {"alerts": N // 4, "notes": ["40,500 mC"], "schema_dir": "/app/avro"}
