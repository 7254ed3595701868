"""The ``doa`` command line, in process (click's CliRunner) and as real subprocesses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import doa
from doa.cli.app import cli
from doa.topology.loader import load_topology
from doa.topology.mermaid import mermaid
from doa.topology.topology import Topology

REPO = Path(__file__).resolve().parent.parent
SENSORS = REPO / "topologies" / "sensors.py"
ITEM = {"type": "record", "name": "item", "namespace": "t",
        "fields": [{"name": "k", "type": "string"}, {"name": "v", "type": "long"}]}

BAD_TOPOLOGY = '''
from doa import Topology

topology = Topology("broken")
src = topology.stream("src", schema="t.item", key="k")
topology.stream("bad topic!", schema="t.item")

@topology.node(reads=[src, "nowhere"], writes="ghost")
def lost(state, batch):
    return state, []
'''


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


def doa_command() -> list[str]:
    exe = Path(sys.executable).parent / "doa"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "doa.cli.app"]


def run(*args: str, module: bool = False, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "doa.cli.app"] if module else doa_command()
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([*cmd, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A directory with schemas/ and a topology file with three wiring mistakes."""
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "item.avsc").write_text(json.dumps(ITEM))
    (tmp_path / "bad.py").write_text(BAD_TOPOLOGY)
    return tmp_path


# -- check -------------------------------------------------------------------------------------
def test_check_example_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    for spec in ("topologies/sensors.py", str(SENSORS)):
        result = invoke("check", spec)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "ok: topology 'sensors': 3 streams, 1 node"
        assert result.stderr == ""
    # a module spec in a fresh process (in pytest, tests/topologies may shadow topologies)
    proc = run("check", "topologies.sensors:topology")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok: topology 'sensors': 3 streams, 1 node"


def test_check_lists_every_mistake(project: Path) -> None:
    result = invoke("check", str(project / "bad.py"))
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert all(line.startswith("problem: ") for line in lines)
    assert any("'bad topic!'" in line for line in lines)
    assert any("node 'lost'" in line and "'nowhere'" in line for line in lines)
    assert any("node 'lost'" in line and "'ghost'" in line for line in lines)


def test_check_with_a_broker_says_the_broker_checks_wait_for_the_problems(
        project: Path) -> None:
    """Walk 6: with problems found offline, ``--broker`` checked nothing more and said
    nothing, so a registry incompatibility showed only after the first fix."""
    result = invoke("check", str(project / "bad.py"), "--broker", "127.0.0.1:1")
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 4 and all(line.startswith("problem: ") for line in lines[:3]), lines
    assert lines[3] == ("note: not checked against 127.0.0.1:1 (the registered schema "
                        "versions, partitions, running nodes) until the problems above are "
                        "fixed")


def test_check_mistakes_subprocess(project: Path) -> None:
    proc = run("check", "bad.py", cwd=project)
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 3
    assert "Traceback" not in proc.stderr


def test_check_needs_a_topology() -> None:
    result = invoke("check")
    assert result.exit_code == 2
    assert "--against" in result.output


# -- check --against ---------------------------------------------------------------------------
@pytest.fixture
def versions(tmp_path: Path) -> Path:
    """Versions of the repo's reading schema, each as ``NAME/reading.avsc`` beside a copy of
    ``location.avsc`` (its cross-file named type): an old checkout against a new one."""
    old = json.loads((REPO / "schemas" / "reading.avsc").read_text())
    fields = old["fields"]
    variants: dict[str, Any] = {
        "old": fields,
        "added_default": [*fields, {"name": "battery", "type": "double", "default": 1.0}],
        "added_required": [*fields, {"name": "battery", "type": "double"}],
        "removed_value": [f for f in fields if f["name"] != "value"],
        "retyped_ts": [dict(f, type="string") if f["name"] == "ts" else f for f in fields],
    }
    for name, fs in variants.items():
        (tmp_path / name).mkdir()
        shutil.copy(REPO / "schemas" / "location.avsc", tmp_path / name)
        (tmp_path / name / "reading.avsc").write_text(json.dumps({**old, "fields": fs}))
    return tmp_path


@pytest.mark.parametrize(("new", "level", "field"), [
    ("added_default", "BACKWARD", None),
    ("added_default", "FORWARD", None),
    ("added_default", "FULL", None),
    ("added_required", "BACKWARD", "reading.battery"),
    ("added_required", "FORWARD", None),
    ("added_required", "FULL", "reading.battery"),
    ("removed_value", "BACKWARD", None),
    ("removed_value", "FORWARD", "reading.value"),
    ("removed_value", "full", "reading.value"),
    ("retyped_ts", "BACKWARD", "reading.ts"),
])
def test_check_against(versions: Path, new: str, level: str, field: str | None) -> None:
    old_path = str(versions / "old" / "reading.avsc")
    new_path = str(versions / new / "reading.avsc")
    result = invoke("check", "--against", old_path, new_path, "--level", level)
    if field is None:
        assert result.exit_code == 0, result.output
        assert f"is {level.upper()}-compatible" in result.stdout
    else:
        assert result.exit_code == 1
        assert result.stdout == ""
        lines = result.stderr.strip().splitlines()
        assert lines and all(line.startswith(f"incompatible ({level.upper()})") for line in lines)
        assert any(f"'{field}'" in line for line in lines), lines


def test_check_against_defaults_to_backward(versions: Path) -> None:
    result = invoke("check", "--against", str(versions / "old" / "reading.avsc"),
                    str(versions / "added_required" / "reading.avsc"))
    assert result.exit_code == 1 and "(BACKWARD)" in result.stderr


def test_check_against_subprocess(versions: Path) -> None:
    ok = run("check", "--against", "old/reading.avsc", "added_default/reading.avsc",
             cwd=versions)
    assert ok.returncode == 0, ok.stderr
    bad = run("check", "--against", "old/reading.avsc", "added_required/reading.avsc",
              "--level", "FULL", cwd=versions)
    assert bad.returncode == 1
    assert "'reading.battery'" in bad.stderr and "Traceback" not in bad.stderr
    missing = run("check", "--against", "old/reading.avsc", "nope.avsc", cwd=versions)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and "nope.avsc" in missing.stderr


@pytest.mark.parametrize("layout", ["side by side", "old saved alone"])
def test_check_against_other_layouts(versions: Path, tmp_path: Path, layout: str) -> None:
    here = tmp_path / "layout"
    here.mkdir()
    shutil.copy(versions / "added_required" / "reading.avsc", here / "reading.avsc")
    if layout == "side by side":
        shutil.copy(versions / "old" / "location.avsc", here / "location.avsc")
        shutil.copy(versions / "old" / "reading.avsc", here / "reading.old.avsc")
        old = here / "reading.old.avsc"
    else:  # e.g. git show HEAD~1:schemas/reading.avsc > /tmp/old.avsc
        shutil.copytree(REPO / "schemas", here, dirs_exist_ok=True)
        shutil.copy(versions / "added_required" / "reading.avsc", here / "reading.avsc")
        (tmp_path / "alone").mkdir()
        old = tmp_path / "alone" / "old.avsc"
        shutil.copy(versions / "old" / "reading.avsc", old)
    result = invoke("check", "--against", str(old), str(here / "reading.avsc"))
    assert result.exit_code == 1, result.output
    assert "'reading.battery'" in result.stderr


# -- graph -------------------------------------------------------------------------------------
_STREAM = re.compile(r'^    (s_\w+)\(\["([^"<]+)<br/><small>([^"<]+)</small>"\]\)$')
_NODE = re.compile(r'^    (n_\w+)\["([^"<]+)<br/><small>([^"<]+)</small>"\]$')
_EDGE = re.compile(r"^    (\w+) (-->|-\. dead letters \.->) (\w+)$")


def parse_mermaid(text: str) -> tuple[dict[str, str], dict[str, str], set[tuple[str, str, str]]]:
    """Streams (id: label), nodes (id: label) and edges of doa's flowcharts; refuses any
    other line."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    streams: dict[str, str] = {}
    nodes: dict[str, str] = {}
    edges: set[tuple[str, str, str]] = set()
    for line in lines[1:]:
        if m := _STREAM.match(line):
            assert m[1] not in streams and m[1] not in nodes, line
            streams[m[1]] = m[2]
        elif m := _NODE.match(line):
            assert m[1] not in streams and m[1] not in nodes, line
            nodes[m[1]] = m[2]
        elif m := _EDGE.match(line):
            assert m[1] in streams or m[1] in nodes, f"edge from undeclared id: {line}"
            assert m[3] in streams or m[3] in nodes, f"edge to undeclared id: {line}"
            edges.add((streams.get(m[1]) or nodes[m[1]], m[2], streams.get(m[3]) or nodes[m[3]]))
        else:
            pytest.fail(f"not a line of a doa flowchart: {line!r}")
    return streams, nodes, edges


def expected_edges(t: Topology) -> set[tuple[str, str, str]]:
    out = set()
    for n in t.nodes.values():
        out |= {(s, "-->", n.name) for s in n.reads}
        out |= {(n.name, "-->", s) for s in n.writes}
        out.add((n.name, "-. dead letters .->", t.dead_letters.name))
    return out


def test_graph_is_mermaid_of_every_stream_and_node(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = invoke("graph", "topologies/sensors.py")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("flowchart LR\n")
    streams, nodes, edges = parse_mermaid(result.stdout)
    t = load_topology(str(SENSORS))
    assert sorted(streams.values()) == sorted(t.streams)
    assert sorted(nodes.values()) == sorted(t.nodes)
    assert edges == expected_edges(t)


def test_graph_ids_stay_distinct(tmp_path: Path) -> None:
    (tmp_path / "item.avsc").write_text(json.dumps(ITEM))
    t = Topology("g", schemas=tmp_path)
    for s in ("a.b", "a_b", "a-b"):
        t.stream(s, schema="t.item")
    t.node(reads="a.b", writes="a_b", name="x.y")(lambda state, batch: (state, []))
    t.node(reads="a_b", writes=["a-b", "ghost"], name="x_y")(lambda state, batch: (state, []))
    streams, nodes, edges = parse_mermaid(mermaid(t))
    assert sorted(streams.values()) == sorted([*t.streams, "ghost"])
    assert sorted(nodes.values()) == ["x.y", "x_y"]
    assert edges == expected_edges(t)


MERMAID_PARSE = """
import { JSDOM } from "jsdom";
import { readFileSync } from "node:fs";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });
try {
  const r = await mermaid.parse(readFileSync(process.argv[2], "utf8"));
  console.log(r.diagramType);
} catch (e) {
  console.error(e.message);
  process.exit(1);
}
"""


def test_graph_parses_with_mermaid(tmp_path: Path) -> None:
    """Mermaid's own parser, when DOA_MERMAID_NODE_MODULES names a node_modules directory
    holding ``mermaid`` and ``jsdom`` (``npm install mermaid jsdom``)."""
    modules = os.environ.get("DOA_MERMAID_NODE_MODULES")
    if not modules or not shutil.which("node"):
        pytest.skip("set DOA_MERMAID_NODE_MODULES to a node_modules with mermaid and jsdom")
    (tmp_path / "node_modules").symlink_to(Path(modules).resolve())
    (tmp_path / "parse.mjs").write_text(MERMAID_PARSE)
    good = run("graph", str(SENSORS)).stdout
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "item.avsc").write_text(json.dumps(ITEM))
    odd = Topology("odd", schemas=tmp_path / "schemas")
    for s in ("a.b", "a_b", "end"):
        odd.stream(s, schema="t.item")
    odd.node(reads=["a.b", "end"], writes=["a_b", "ghost"], name='say "hi" <b>&')(
        lambda state, batch: (state, []))
    sources = {"good.mmd": good, "odd.mmd": mermaid(odd),
               "bad.mmd": good.replace("-->", "-->[[[", 1)}
    for name, text in sources.items():
        (tmp_path / name).write_text(text)
    for name in ("good.mmd", "odd.mmd"):
        ok = subprocess.run(["node", "parse.mjs", name], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, check=False)
        assert ok.returncode == 0, (name, ok.stderr)
        assert ok.stdout.strip().startswith("flowchart")
    bad = subprocess.run(["node", "parse.mjs", "bad.mmd"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 1, "the parser must refuse a broken chart"


# -- errors are one line -----------------------------------------------------------------------
@pytest.mark.parametrize(("name", "source", "expected"), [
    ("missing.py", None, "topology file 'missing.py' not found"),
    ("syntax.py", "from doa import Topology\ntopology = Topology(\n", "does not parse"),
    ("empty.py", "x = 1\n", "has no Topology named 'topology' (found: no Topology)"),
    ("number.py", "topology = 3\n",
     "has no Topology named 'topology' ('topology' is of type int; found: no Topology)"),
    ("raises.py", "raise RuntimeError('boom')\n",
     "failed to import: RuntimeError: boom (raises.py, line 1)"),
    ("typo.py", "from doa import Topology\n\ntopology = Topolgy('t')\n",
     "failed to import: NameError: name 'Topolgy' is not defined (typo.py, line 3)"),
    ("adir", "", "is a directory"),
])
@pytest.mark.parametrize("module", [False, True])
def test_errors_are_one_line(tmp_path: Path, name: str, source: str | None, expected: str,
                             module: bool) -> None:
    if name == "adir":
        (tmp_path / name).mkdir()
    elif source is not None:
        (tmp_path / name).write_text(source)
    proc = run("check", name, cwd=tmp_path, module=module)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr.endswith("\n") and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: ")
    assert expected in proc.stderr
    assert "Traceback" not in proc.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "syntax.py").write_text("topology = (\n")
    proc = run("--debug", "check", "syntax.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "does not parse" in proc.stderr


def test_graph_error_is_one_line(tmp_path: Path) -> None:
    proc = run("graph", "missing.py", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr == "error: topology file 'missing.py' not found\n"


def test_loading_by_module_name(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "item.avsc").write_text(json.dumps(ITEM))
    (tmp_path / "mytopo.py").write_text(
        "from doa import Topology\nflow = Topology('mine')\n"
        "s = flow.stream('s', schema='t.item')\n")
    (tmp_path / "needs.py").write_text("import not_a_real_module_xyz\n")
    ok = run("check", "mytopo:flow", cwd=tmp_path)
    assert (ok.returncode, ok.stdout.strip()) == (0, "ok: topology 'mine': 2 streams, 0 nodes")
    missing = run("check", "nomodule_xyz", cwd=tmp_path)
    assert missing.returncode == 1 and "no topology file or module 'nomodule_xyz'" in missing.stderr
    inner = run("check", "needs", cwd=tmp_path)
    assert inner.returncode == 1 and inner.stderr.count("\n") == 1
    assert "failed to import" in inner.stderr and "not_a_real_module_xyz" in inner.stderr


# -- version and demo --------------------------------------------------------------------------
def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout.strip() == f"doa, version {doa.__version__}"
    for module in (False, True):
        proc = run("--version", module=module)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == f"doa, version {doa.__version__}"


def test_demo_memory_prints_the_stream_table(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    result = invoke("demo", "topologies/sensors.py", "--memory", "-n", "1500")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "sensors in memory: published 1500 to readings" in out
    assert "streams" in out
    rows = {m[1]: m for m in re.finditer(r"│ (\S+)\s+│ (\S+)\s+│ ([^│]+?)\s+│ (\S+)\s+│\s+(\d+) │",
                                         out)}
    assert set(rows) == {"sensors.dlq", "readings", "alerts"}
    assert rows["readings"][2] == "sensors.reading" and rows["readings"][4] == "flag_spikes"
    assert rows["readings"][5] == "1500"  # one of them malformed: the demo source sends one
    assert rows["sensors.dlq"][5] == "1"
    assert int(rows["alerts"][5]) > 0 and rows["alerts"][3] == "flag_spikes"


def test_demo_shows_samples_only_of_streams_with_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    # too few records for an alert or a dead letter
    result = invoke("demo", "topologies/sensors.py", "--memory", "-n", "5")
    assert result.exit_code == 0, result.output
    assert "published 5 to readings" in result.stdout
    assert "last records of" not in result.stdout


def test_demo_subprocess() -> None:
    proc = run("demo", "topologies/sensors.py", "--memory", "-n", "200")
    assert proc.returncode == 0, proc.stderr
    assert "published 200 to readings" in proc.stdout and "Traceback" not in proc.stderr


def test_run_with_an_unknown_engine_fails_before_starting_anything() -> None:
    done = subprocess.run([*doa_command(), "run", str(REPO / "topologies" / "sensors.py"),
                           "--engine", "nope", "--broker", "127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "error: unknown engine 'nope' (engines: kafka, faust)"]
