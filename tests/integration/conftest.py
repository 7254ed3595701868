"""Integration fixtures: a real broker per test, of each kind.

``broker`` is parametrized over the embedded broker (``tansu``, in memory, starts in ~0.1 s)
and Apache Kafka (``kafka``: a fresh single KRaft node per test from doa.local.apache_kafka, ~2 s;
its jars are assembled with Maven on first use). ``DOA_TEST_BROKERS=tansu`` (or ``kafka``)
runs one kind only. Where the two legitimately differ, a test asks for ``broker_kind`` and
says so, or is marked ``@pytest.mark.brokers("kafka", reason=...)``: nothing is skipped
silently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from doa.local.embedded import EmbeddedBroker

ROOT = Path(__file__).resolve().parents[2]
COUNTING = str(ROOT / "tests" / "topologies" / "counting.py")
KINDS = ("tansu", "kafka")
SELECTED = [k.strip() for k in os.environ.get("DOA_TEST_BROKERS", ",".join(KINDS)).split(",")
            if k.strip()]

pytestmark = pytest.mark.broker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "brokers(*kinds, reason): run this broker test on these broker kinds only "
                   "(the reason says why the others differ)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unknown = sorted(set(SELECTED) - set(KINDS))
    if unknown:
        raise pytest.UsageError(f"DOA_TEST_BROKERS: unknown broker kind(s) {unknown} "
                                f"(kinds: {', '.join(KINDS)})")
    for item in items:
        marker = item.get_closest_marker("brokers")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None or "broker_kind" not in callspec.params:
            continue
        kind = callspec.params["broker_kind"]
        if kind not in marker.args:
            reason = marker.kwargs.get("reason", "")
            item.add_marker(pytest.mark.skip(
                reason=f"not on {kind}: {reason}" if reason else f"not on {kind}"))
    # test_compose waits for .ci/docker-prepare, which .ci/run starts in the background: last.
    items.sort(key=lambda item: item.nodeid.startswith("tests/integration/test_compose.py"))


@pytest.fixture(scope="session")
def kafka_assembly() -> object:
    """Kafka's jars, assembled (Maven, first use only) once per session."""
    from doa.local.apache_kafka import assemble

    return assemble()


@pytest.fixture(params=SELECTED)
def broker_kind(request: pytest.FixtureRequest) -> str:
    """``tansu`` or ``kafka``: the kind of broker ``broker`` is, for tests that differ."""
    return str(request.param)


@pytest.fixture
def broker(broker_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """The address of a fresh broker of kind ``broker_kind``."""
    with fresh_broker(broker_kind, request) as address:
        yield address


@pytest.fixture
def second_broker(broker_kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another fresh broker, of the same kind as ``broker``."""
    with fresh_broker(broker_kind, request) as address:
        yield address


@contextlib.contextmanager
def fresh_broker(kind: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh broker of ``kind`` (tansu or kafka) while the context is open: its address."""
    if kind == "tansu":
        with EmbeddedBroker() as b:
            yield b.address
        return
    from doa.local.apache_kafka import LocalKafka

    request.getfixturevalue("kafka_assembly")
    with LocalKafka() as k:
        yield k.address


def doa_process(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``doa ARGS`` as a child process (its own process group)."""
    return subprocess.Popen(
        [sys.executable, "-m", "doa.cli.app", *args], cwd=ROOT,
        env={**os.environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
