"""Shared fixtures: the repository's schemas, loaded the way the runtime loads them."""

from __future__ import annotations

from pathlib import Path

import pytest

from doa.schema import SchemaSet

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@pytest.fixture(scope="session")
def repo_schemas() -> SchemaSet:
    """``schemas/`` plus doa's own ``doa/schemas/``."""
    return SchemaSet.load(SCHEMA_DIR)
