"""``doa check`` warns of a step that mentions a stream it does not declare, and the run-time
error for such a stream names the user's file and line (not doa's generated module name)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import doa.testing
from doa.cli.app import cli
from doa.topology.loader import load_topology

ITEM = {"type": "record", "name": "item", "namespace": "t",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}

SNEAKY = '''from doa import Topology

topology = Topology("sneaky")
src = topology.stream("src", schema="t.item", key="k")
dst = topology.stream("dst", schema="t.item", key="k")


@topology.node(reads=src)
def sneaky(state, batch):
    return state, [(e, "dst", dict(e)) for e in batch]
'''
LINE = 8  # of the decorator, where the node is declared


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "item.avsc").write_text(json.dumps(ITEM))
    (tmp_path / "sneaky.py").write_text(SNEAKY)
    assert SNEAKY.splitlines()[LINE - 1].startswith("@topology.node")
    return tmp_path


def test_check_warns_and_still_says_ok(project: Path) -> None:
    result = CliRunner().invoke(cli, ["check", str(project / "sneaky.py")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "ok: topology 'sneaky': 3 streams, 1 node"
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("warning: node 'sneaky' (")
    where = line.partition(" (")[2].partition(")")[0]
    path, _, number = where.rpartition(":")
    assert Path(path).resolve() == (project / "sneaky.py").resolve() and int(number) == LINE
    assert "mentions stream 'dst', which it does not declare in reads or writes" in line


def test_check_subprocess_names_the_file_as_typed(project: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "doa.cli.app", "check", "sneaky.py"], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "COLUMNS": "200"})
    assert done.returncode == 0, done.stderr
    assert done.stderr.startswith(f"warning: node 'sneaky' (sneaky.py:{LINE}) mentions stream "
                                  "'dst'"), done.stderr
    assert done.stdout.startswith("ok: ")


def test_check_with_problems_prints_warnings_too_and_fails(project: Path) -> None:
    (project / "sneaky.py").write_text(SNEAKY + '\n\n@topology.node(reads="nowhere")\n'
                                       'def lost(state, batch):\n    return state, []\n')
    result = CliRunner().invoke(cli, ["check", str(project / "sneaky.py")])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["warning", "problem"], lines
    assert "'nowhere'" in lines[1]


def test_the_run_time_error_names_the_users_file_and_line(project: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(project)
    t = load_topology("sneaky.py")
    (letter,) = doa.testing.run(t, {"src": [{"k": "a", "v": 1}]}).dead_letters
    message = letter["message"]
    assert f"node 'sneaky' (sneaky.py:{LINE}) emitted to stream 'dst'" in message, message
    assert "_doa_topology" not in message
