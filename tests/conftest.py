"""Shared fixtures: the repository's schemas, loaded the way the runtime loads them; and
``--cpu-load N`` (or ``DOA_TEST_CPU_LOAD=N``): N CPU-burning processes for the session."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from doa.wire.schema import SchemaSet
from tests.cpu_load import CpuLoad

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


@pytest.fixture(scope="session", autouse=True)
def cpu_load(request: pytest.FixtureRequest) -> Iterator[int]:
    """The ``--cpu-load`` burners, running for the session; the number of them."""
    n = int(request.config.getoption("--cpu-load"))
    if n <= 0:
        yield 0
        return
    with CpuLoad(n):
        yield n
