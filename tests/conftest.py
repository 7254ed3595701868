"""Shared fixtures: the repository's schemas, loaded the way the runtime loads them;
``--cpu-load N`` (or ``DOA_TEST_CPU_LOAD=N``): N CPU-burning processes for the session; and
hypothesis profiles: ``doa`` (the default: derandomized, so a run of the suite draws the same
examples every time and CI cannot fail on a draw nobody can repeat) and ``fuzz``
(``pytest --hypothesis-profile fuzz``: new random examples each run, to look for new bugs;
a failure prints the blob that reproduces it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from doa.wire.schema import SchemaSet
from tests.cpu_load import CpuLoad

settings.register_profile("doa", derandomize=True, database=None, print_blob=True)
settings.register_profile("fuzz", derandomize=False, print_blob=True)
settings.load_profile("doa")  # --hypothesis-profile, read after this file, overrides it

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture(scope="session")
def repo_schemas() -> SchemaSet:
    """``schemas/`` plus doa's own ``doa/schemas/``."""
    return SchemaSet.load(SCHEMA_DIR)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-load", type=int, metavar="N",
                     default=int(os.environ.get("DOA_TEST_CPU_LOAD", "0") or 0),
                     help="run N CPU-burning processes beside the tests for the whole "
                          "session (results must not depend on load); env DOA_TEST_CPU_LOAD")


def pytest_configure(config: pytest.Config) -> None:
    """Start the ``--cpu-load`` burners once per run: in the process that runs the session,
    not in each pytest-xdist worker (``-n 3`` would otherwise triple the load)."""
    n = int(config.getoption("--cpu-load"))
    if n > 0 and not hasattr(config, "workerinput"):
        load = CpuLoad(n)
        load.__enter__()
        config.stash[_LOAD] = load


def pytest_unconfigure(config: pytest.Config) -> None:
    load = config.stash.get(_LOAD, None)
    if load is not None:
        load.__exit__(None, None, None)


_LOAD = pytest.StashKey[CpuLoad]()


@pytest.fixture(scope="session")
def cpu_load(request: pytest.FixtureRequest) -> int:
    """How many ``--cpu-load`` burners run beside the tests (0: none)."""
    return max(0, int(request.config.getoption("--cpu-load")))
