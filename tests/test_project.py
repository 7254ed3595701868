"""Promises the project makes about itself: README commands, CI, package hygiene, examples."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import doa
from doa.topology.loader import load_topology

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "doa"
MODULES = sorted(PACKAGE.rglob("*.py"))
TOPOLOGIES = sorted(p for p in (REPO / "topologies").glob("*.py") if p.name != "__init__.py")
HEAVY = ("aiokafka", "kafka", "faust", "river", "numba")


def readme_command(after: str) -> str:
    """The first line of the first ```bash block after the line containing ``after``."""
    text = (REPO / "README.md").read_text()
    start = text.index(after)
    match = re.compile(r"```bash\n(.*?)\n```", re.S).search(text, start)
    assert match is not None, f"no bash block after {after!r}"
    lines = [line for line in match[1].splitlines() if line.strip()]
    assert len(lines) == 1, f"the block after {after!r} should be one command: {lines}"
    return lines[0]


def test_readme_test_command_is_what_ci_runs() -> None:
    command = readme_command("Run the tests")
    assert "pytest" in command
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert command in ci, f"{command!r} is not a line of .ci/run"


def test_readme_demo_command_runs_the_demo() -> None:
    command = readme_command("Run the demo")
    assert "doa demo" in command
    target = command.split("doa demo", 1)[1].split()[0]
    assert (REPO / target).is_file(), f"the demo's topology {target!r} does not exist"


def test_every_public_name_resolves() -> None:
    assert doa.__all__, "doa exports nothing"
    assert len(set(doa.__all__)) == len(doa.__all__)
    for name in doa.__all__:
        assert getattr(doa, name, None) is not None, name


def test_modules_found() -> None:
    names = {p.relative_to(PACKAGE).as_posix() for p in MODULES}
    assert {"__init__.py", "topology/topology.py", "topology/validate.py", "testing.py",
            "cli/app.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_is_short(path: Path) -> None:
    lines = len(path.read_text().splitlines())
    assert lines < 400, f"{path.relative_to(REPO)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_module_has_future_annotations(path: Path) -> None:
    tree = ast.parse(path.read_text())
    future = [node for node in tree.body if isinstance(node, ast.ImportFrom)
              and node.module == "__future__"]
    assert any(a.name == "annotations" for node in future for a in node.names), \
        f"{path.relative_to(REPO)} lacks `from __future__ import annotations`"


def test_import_doa_stays_light() -> None:
    code = "import json, sys, doa; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=REPO, timeout=60, check=True)
    loaded = json.loads(proc.stdout)
    assert "doa" in loaded and "doa.topology.topology" in loaded
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"`import doa` imports {heavy}"


def test_there_are_example_topologies() -> None:
    assert any(p.name == "sensors.py" for p in TOPOLOGIES)


@pytest.mark.parametrize("path", TOPOLOGIES, ids=lambda p: p.name)
def test_example_topology_loads_and_checks(path: Path) -> None:
    topology = load_topology(str(path))
    assert topology.validate() == []
    topology.check()
    assert topology.nodes, f"{path.name} declares no node"


def test_readme_ml_nodes_declarations_are_the_examples() -> None:
    """Each line of the README's ML-node declarations is a line of topologies/fraud.py (which
    the demo tests run), so the snippet a newcomer copies stays one that works."""
    text = (REPO / "README.md").read_text()
    start = text.index("Declared as `topologies/fraud.py` declares them")
    block = text[text.index("```python\n", start) + 10:text.index("```\n", start + 200)]
    example = {line.strip() for line in (REPO / "topologies" / "fraud.py").read_text()
               .splitlines()}
    lines = [line.strip() for line in block.splitlines() if line.strip()]
    assert len(lines) > 15
    assert [line for line in lines if line not in example] == []
