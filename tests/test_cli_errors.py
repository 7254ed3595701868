"""One-line errors of ``doa check --against`` and ``doa graph`` that name the real cause, and
the versions ``doa model rollback`` takes as kept, against the nodes' own rules."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from doa.events import Event
from doa.model.kept import learner_kept, model_kept

REPO = Path(__file__).resolve().parent.parent


def doa(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}
    return subprocess.run([sys.executable, "-m", "doa.cli.app", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=60, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    return proc.stderr.strip()


def test_graph_names_the_topologies_the_module_has() -> None:
    text = one_line_error(doa("graph", "topologies.sensors:topo"))
    assert text == "error: 'topologies.sensors' has no Topology named 'topo' (found: topology)"


@pytest.fixture
def duplicated(tmp_path: Path) -> Path:
    """The repo's schemas/ with a second, different definition of ``sensors.reading``."""
    shutil.copytree(REPO / "schemas", tmp_path / "schemas")
    reading = json.loads((REPO / "schemas" / "reading.avsc").read_text())
    reading["fields"].append({"name": "battery", "type": "double", "default": 1.0})
    (tmp_path / "schemas" / "reading_v2ok.avsc").write_text(json.dumps(reading))
    return tmp_path


def test_check_against_names_a_duplicate_definition(duplicated: Path) -> None:
    text = one_line_error(doa("check", "--against", "schemas/alert.avsc", "schemas/alert.avsc",
                              cwd=duplicated))
    assert text.startswith("error: type 'sensors.reading' is defined in schemas/reading.avsc "
                           "and, differently, in schemas/reading_v2ok.avsc; "), text
    assert "unknown type 'sensors.Location' in schemas/alert.avsc" in text


def test_check_against_needs_no_neighbours_for_a_self_contained_schema(
        duplicated: Path) -> None:
    done = doa("check", "--against", "schemas/location.avsc", "schemas/location.avsc",
               cwd=duplicated)
    assert done.returncode == 0, done.stderr


# -- the versions doa model rollback takes as kept ---------------------------------------------
def test_learner_kept_is_what_the_learner_keeps() -> None:
    from river import linear_model, metrics

    from doa.learner import versions

    rnd = random.Random(5)
    for keep in (1, 2, 3, 5):
        state = {"model": linear_model.LinearRegression(), "metric": metrics.MAE(),
                 "version": 1, "labels": 0}
        versions.start_versions(state, timestamp=0)
        events = []
        for t in range(40):
            step = rnd.choice(["created", "created", "reset", "rollback"])
            where: dict[str, Any] = {"partition": 0, "timestamp": t}
            if step == "created":
                events.append(versions.new_version(state, "m", keep=keep, **where))
            elif step == "reset":
                events.append(versions.reset(state, linear_model.LinearRegression(), "m",
                                             reason="", keep=keep, **where))
            else:
                target = rnd.choice(list(state["versions"]))
                events.append(versions.rollback(state, target, "m", reason="", keep=keep,
                                                **where))
            assert learner_kept(events, keep, 1) == {0: sorted(state["versions"])}, (keep, t)


def test_model_kept_is_what_the_model_node_can_roll_back_to() -> None:
    from doa.model import versions
    from doa.model.artifacts import chunk_records

    rnd = random.Random(3)
    for keep in (1, 2, 3):
        state = versions.initial(1, "sklearn")
        records: list[Event] = []
        for t in range(40):
            step = rnd.choice(["publish", "candidate", "promote", "rollback"])
            if step in ("publish", "candidate"):
                new = max(state["versions"]) + 1
                batch = chunk_records("m", new, f"model {new}".encode(), fmt="sklearn",
                                      chunk_bytes=8, publisher="", published=0, key=None,
                                      candidate=step == "candidate")
            elif step == "promote":
                batch = [versions.command("m", "promote")]
            else:
                batch = [versions.command("m", "rollback", rnd.randint(1, t + 1))]
            for record in batch:
                records.append(Event(record, stream="m.versions", partition=0, offset=t,
                                     timestamp=t))
                with contextlib.suppress(versions.VersionError):  # a dead letter: no change
                    versions.apply(state, record, node="m", key=None, keep=keep)
            can = [v for v in sorted(state["versions"]) if _rolls_back(state, v, keep)]
            assert model_kept(records, 1, keep, 1) == {0: can}, (keep, t)


def _rolls_back(state: dict[str, Any], version: int, keep: int) -> bool:
    """Whether the model node, in ``state``, accepts a rollback to ``version``."""
    import copy

    from doa.model import versions

    try:
        versions.apply(copy.deepcopy(state), versions.command("m", "rollback", version),
                       node="m", key=None, keep=keep)
    except versions.VersionError:
        return False
    return True


def test_sigterm_while_the_topology_imports_is_a_stop_even_when_an_extension_mangles_it(
        tmp_path: Path) -> None:
    """CI sent SIGTERM to a `doa run` still importing numpy: the handler's SystemExit, raised
    inside the extension's initialisation, came out as ``TypeError: expected a message
    argument`` and the run exited 1 with "failed to import". A topology that turns the stop
    into such an error the same way: `doa run` exits 0, without an error line."""
    path = tmp_path / "slow.py"
    path.write_text(
        "import os, signal, time\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(5)\n"
        "except BaseException:  # as numpy's C initialisation turned the SystemExit\n"
        "    raise TypeError('expected a message argument') from None\n"
        "from doa import Topology\n"
        "topology = Topology('slow')\n")
    done = doa("run", str(path))
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr, done.stderr
    assert "failed to import" not in done.stderr
    broken = tmp_path / "broken.py"  # no signal: the same error is the topology's, as before
    broken.write_text("raise TypeError('expected a message argument')\n")
    assert "failed to import: TypeError: expected a message argument" in one_line_error(
        doa("run", str(broken)))
