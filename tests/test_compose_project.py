"""``doa compose`` in a user's own project (not doa's repository), without a Docker engine.

The files it writes (Dockerfile.doa, its ignore file, doa in .doa/) and the compose file that
builds from them, checked by Docker Compose v2 and the compose-spec schema; where doa comes
from (:mod:`doa.deploy.source`), each way that fails in one line. The images are built and
run in tests/integration/test_compose_project.py.
"""

from __future__ import annotations

import json
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from doa.cli.app import cli
from doa.deploy import source
from doa.deploy.project import MARK
from doa.errors import DoaError
from tests.test_compose_file import SCHEMA, compose_binary

TOPOLOGY = '''\
from __future__ import annotations

from doa.topology.topology import Topology

topology = Topology("iot", schemas="{schemas}")
readings = topology.stream("readings", schema="reading", key="sensor_id", partitions=2)
alerts = topology.stream("alerts", schema="reading", key="sensor_id")


@topology.node(reads=readings, writes=alerts)
def flag_hot(state, batch):
    return state, [(r, dict(r)) for r in batch if r["celsius"] > 30.0]
'''
READING = {"type": "record", "name": "reading", "fields": [
    {"name": "sensor_id", "type": "string"}, {"name": "celsius", "type": "double"}]}
REQUIRES = ["click>=8.3", 'aiohttp>=3.9; extra == "ui"', 'pyarrow>=17; extra == "data"',
            'prometheus-client>=0.26; extra == "metrics"']


def fake_wheel(folder: Path, name: str = "doa", requires: list[str] = REQUIRES) -> Path:
    """A wheel file with just its METADATA."""
    path = folder / f"{name}-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(f"{name}-0.1.0.dist-info/METADATA", "Metadata-Version: 2.4\n"
                         f"Name: {name}\nVersion: 0.1.0\n"
                         + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's project (the working directory): pipelines/iot.py, avro/, requirements.txt."""
    root = tmp_path / "proj"
    (root / "pipelines").mkdir(parents=True)
    (root / "pipelines" / "iot.py").write_text(TOPOLOGY.format(schemas="../avro"))
    (root / "avro").mkdir()
    (root / "avro" / "reading.avsc").write_text(json.dumps(READING))
    (root / "requirements.txt").write_text("humanize\n")
    monkeypatch.chdir(root)
    return root


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, ["compose", "pipelines/iot.py", *args])


def error(result: Any) -> str:
    """The one line of the DoaError ``doa compose`` stopped with (doa's main prints it)."""
    assert isinstance(result.exception, DoaError), result.output
    assert "\n" not in str(result.exception)
    return str(result.exception)


def test_a_project_gets_its_dockerfile_and_doa(project: Path, tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    result = run("--out", "docker-compose.yml", "--doa-wheel", str(wheel))
    assert result.exit_code == 0, result.output
    assert "wrote Dockerfile.doa, .doa/requirements.txt, .doa/dist/doa-0.1.0-py3-none-any.whl" \
        in result.output
    assert (project / ".doa" / "dist" / wheel.name).read_bytes() == wheel.read_bytes()
    assert (project / ".doa" / "requirements.txt").read_text().splitlines()[1:] == [
        "click>=8.3", "aiohttp>=3.9", "prometheus-client>=0.26"]
    docker = (project / "Dockerfile.doa").read_text()
    assert docker.startswith(MARK)
    for line in ["FROM ${BASE_IMAGE} AS doa", "FROM doa AS app", "FROM jre AS kafka",
                 "COPY .doa/dist/doa-0.1.0-py3-none-any.whl /opt/doa/",
                 "COPY requirements.txt /app/requirements.txt",
                 "RUN /opt/venv/bin/pip install --quiet -r /app/requirements.txt",
                 "COPY pipelines /app/pipelines", "COPY avro /app/avro", "WORKDIR /app"]:
        assert line in docker.splitlines(), line
    services = yaml.safe_load((project / "docker-compose.yml").read_text())["services"]
    assert services["prepare"]["build"] == {
        "context": ".", "dockerfile": "Dockerfile.doa", "target": "app",
        "args": {"BASE_IMAGE": "${DOA_BASE_IMAGE:-python:3.11-slim-bookworm}"}}
    assert services["kafka"]["build"]["target"] == "kafka"
    assert services["kafka"]["image"] == "iot-doa-kafka:latest"
    assert services["flag_hot"]["image"] == "iot-doa:latest"
    assert services["flag_hot"]["command"][:4] == ["run", "pipelines/iot.py", "--nodes",
                                                   "flag_hot"]


def test_the_compose_file_is_valid(project: Path, tmp_path: Path) -> None:
    result = run("--out", "deploy/docker-compose.yml", "--doa-wheel", str(fake_wheel(tmp_path)))
    assert result.exit_code == 0, result.output
    path = project / "deploy" / "docker-compose.yml"
    document = yaml.safe_load(path.read_text())
    assert document["services"]["prepare"]["build"]["context"] == ".."
    jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(document)
    done = subprocess.run([str(compose_binary()), "-f", str(path), "config", "--format",
                           "json"], cwd=path.parent, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    build = json.loads(done.stdout)["services"]["prepare"]["build"]
    assert (build["context"], build["dockerfile"]) == (str(project), "Dockerfile.doa")


def test_twice_gives_the_same_files(project: Path, tmp_path: Path) -> None:
    wheel = str(fake_wheel(tmp_path))
    files = ("Dockerfile.doa", "docker-compose.yml", ".doa/requirements.txt")
    assert run("--out", "docker-compose.yml", "--doa-wheel", wheel).exit_code == 0
    first = [(project / f).read_text() for f in files]
    assert run("--out", "docker-compose.yml", "--doa-wheel", wheel).exit_code == 0
    assert [(project / f).read_text() for f in files] == first


def test_a_dockerfile_doa_did_not_write_is_kept(project: Path, tmp_path: Path) -> None:
    (project / "Dockerfile.doa").write_text("FROM mine\n")
    result = run("--doa-wheel", str(fake_wheel(tmp_path)))
    assert "Dockerfile.doa exists and doa did not write it: move it away" in error(result)
    assert (project / "Dockerfile.doa").read_text() == "FROM mine\n"
    assert not (project / ".doa").exists()


def test_doa_from_a_requirement(project: Path) -> None:
    spec = "doa @ git+https://example.org/doa.git@v0.1.0"
    result = run("--doa-requirement", spec)
    assert result.exit_code == 0, result.output
    assert "doa pip requirement doa @ git+" in result.output
    docker = (project / "Dockerfile.doa").read_text().splitlines()
    assert f'RUN ["/opt/venv/bin/pip", "install", "--quiet", "{spec}"]' in docker
    assert not any(line.startswith("COPY .doa/dist") for line in docker)
    assert not list((project / ".doa" / "dist").iterdir())
    assert "--doa-requirement 'doa @ git+https://example.org/doa.git@v0.1.0'" in docker[1]


def test_the_topology_may_name_a_schema_folder_inside_its_own(project: Path,
                                                              tmp_path: Path) -> None:
    (project / "pipelines" / "avro").mkdir()
    (project / "pipelines" / "avro" / "reading.avsc").write_text(json.dumps(READING))
    (project / "pipelines" / "iot.py").write_text(TOPOLOGY.format(schemas="avro"))
    (project / "requirements.txt").unlink()
    assert run("--doa-wheel", str(fake_wheel(tmp_path))).exit_code == 0
    docker = (project / "Dockerfile.doa").read_text()
    assert "COPY pipelines /app/pipelines" in docker and "avro" not in docker.split("WORKDIR")[1]
    assert "requirements.txt /app" not in docker


@pytest.mark.parametrize(("args", "message"), [
    (["--doa-wheel", "nope.whl"], "--doa-wheel nope.whl: no such file"),
    (["--doa-wheel", "pipelines/iot.py"], "--doa-wheel pipelines/iot.py: not a wheel"),
    (["--doa-requirement", "-e ."], "--doa-requirement '-e .': expected a pip requirement"),
    (["--doa-requirement", "doa", "--doa-wheel", "x.whl"], "give one of them"),
])
def test_bad_doa_sources_are_one_line(project: Path, args: list[str], message: str) -> None:
    assert message in error(run(*args))


def test_a_wheel_of_another_project(project: Path, tmp_path: Path) -> None:
    result = run("--doa-wheel", str(fake_wheel(tmp_path, "other")))
    assert "a wheel of 'other', not of doa" in error(result)


def test_what_the_image_cannot_copy(project: Path, tmp_path: Path) -> None:
    wheel = str(fake_wheel(tmp_path))
    (tmp_path / "avro").mkdir()
    (tmp_path / "avro" / "reading.avsc").write_text(json.dumps(READING))
    (project / "pipelines" / "iot.py").write_text(TOPOLOGY.format(schemas="../../avro"))
    message = error(run("--doa-wheel", wheel))
    assert f"its schema folder is {tmp_path / 'avro'}, outside the project folder" in message
    (project / "pipelines" / "iot.py").write_text(TOPOLOGY.format(schemas="../avro"))
    (tmp_path / "elsewhere.py").write_text(TOPOLOGY.format(schemas="avro"))
    result = CliRunner().invoke(cli, ["compose", str(tmp_path / "elsewhere.py"),
                                      "--doa-wheel", wheel])
    assert f"is {tmp_path / 'elsewhere.py'}, outside the project folder" in error(result)


def test_doas_own_repository_builds_from_source() -> None:
    result = CliRunner().invoke(cli, ["compose", "topologies/fraud.py", "--doa-wheel", "x"])
    assert "doa's own repository builds doa from its source" in error(result)


class FakeDistribution:
    """What :func:`doa.deploy.source.running` reads of an installed distribution."""

    version = "0.1.0"

    def __init__(self, direct_url: dict[str, Any] | None) -> None:
        self.direct_url = direct_url

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


def installed_as(monkeypatch: pytest.MonkeyPatch, direct_url: dict[str, Any] | None) -> None:
    monkeypatch.setattr(source, "_installed", lambda: FakeDistribution(direct_url))


@pytest.mark.parametrize(("direct_url", "message"), [
    (None, "installed from an index, not from a directory or a wheel doa can copy: pass "
           "--doa-wheel FILE (a doa wheel) or --doa-requirement SPEC (a pip requirement), "
           "e.g. --doa-requirement doa==0.1.0 with your index"),
    ({"url": "https://example.org/doa.git",
      "vcs_info": {"vcs": "git", "commit_id": "abc123"}},
     "--doa-requirement 'doa @ git+https://example.org/doa.git@abc123'"),
    ({"url": "file:///nowhere/doa-0.1.0-py3-none-any.whl", "archive_info": {}},
     "installed from /nowhere/doa-0.1.0-py3-none-any.whl, which is gone: pass --doa-wheel"),
    ({"url": "file:///somewhere/doa-0.1.0.tar.gz", "archive_info": {}},
     "not from a directory or a wheel: pass --doa-wheel"),
    ({"url": "file:///nowhere/doa", "dir_info": {"editable": True}},
     "installed from /nowhere/doa, which has no pyproject.toml any more: pass --doa-wheel"),
])
def test_the_running_doa_that_cannot_be_had(monkeypatch: pytest.MonkeyPatch,
                                            direct_url: dict[str, Any] | None,
                                            message: str) -> None:
    installed_as(monkeypatch, direct_url)
    with pytest.raises(DoaError) as caught:
        source.running()
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_the_running_doa_from_a_wheel_or_a_directory(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    wheel = fake_wheel(tmp_path)
    installed_as(monkeypatch, {"url": wheel.as_uri(), "archive_info": {}})
    assert source.running() == source.Source(wheel=wheel)
    (tmp_path / "pyproject.toml").write_text("")
    installed_as(monkeypatch, {"url": tmp_path.as_uri(), "dir_info": {}})
    built: list[Path] = []
    monkeypatch.setattr(source, "build_wheel",
                        lambda src, out=None: built.append(src) or wheel)  # type: ignore[func-returns-value]
    assert source.running() == source.Source(wheel=wheel, built_from=tmp_path)
    assert built == [tmp_path]


def test_an_installed_doa_is_one_with_a_record(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(source.metadata, "distributions", lambda name: [])
    with pytest.raises(DoaError, match="the running doa was not installed by pip"):
        source.running()


def test_a_build_that_fails_is_pips_last_line(tmp_path: Path) -> None:
    (tmp_path / "doa").mkdir()
    (tmp_path / "doa" / "pyproject.toml").write_text("[project\n")
    with pytest.raises(DoaError, match=r"pip wheel .*doa failed \(.*\): fix the build, or "
                                       "pass --doa-wheel"):
        source.build_wheel(tmp_path / "doa", tmp_path / "out")


def test_files_the_requirements_include_are_copied_where_pip_looks(project: Path,
                                                                   tmp_path: Path) -> None:
    (project / "requirements.txt").write_text(
        "humanize  # formatting\n-r reqs/ml.txt\n--constraint=pins.txt\n")
    (project / "reqs").mkdir()
    (project / "reqs" / "ml.txt").write_text("-c ../pins.txt\nriver\n")
    (project / "pins.txt").write_text("numpy<3\n")
    assert run("--doa-wheel", str(fake_wheel(tmp_path))).exit_code == 0
    app = (project / "Dockerfile.doa").read_text().split("FROM doa AS app")[1].splitlines()
    at = app.index("RUN /opt/venv/bin/pip install --quiet -r /app/requirements.txt")
    assert app[at - 3:at] == ["COPY requirements.txt /app/requirements.txt",
                              "COPY reqs/ml.txt /app/reqs/ml.txt",
                              "COPY pins.txt /app/pins.txt"]


@pytest.mark.parametrize(("line", "says"), [
    ("-e .", "requirements.txt line 2: `-e .` installs from the project folder"),
    ("./lib", "requirements.txt line 2: `./lib` installs from the project folder"),
    ("-r ../outside.txt", "names {tmp}/outside.txt, outside the project folder"),
    ("-r missing.txt", "requirements.txt line 2: `-r missing.txt` names missing.txt, which is "
                       "not in the project"),
])
def test_a_requirement_the_image_cannot_install_is_one_line_before_any_file(
        project: Path, tmp_path: Path, line: str, says: str) -> None:
    (tmp_path / "outside.txt").write_text("river\n")
    (project / "requirements.txt").write_text(f"humanize\n{line}\n")
    assert says.format(tmp=tmp_path) in error(run("--doa-wheel", str(fake_wheel(tmp_path))))
    assert not (project / "Dockerfile.doa").exists() and not (project / ".doa").exists()
