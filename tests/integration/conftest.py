"""Integration fixtures: a real broker per test, of each kind.

``broker`` is parametrized over the embedded broker (``tansu``, in memory, starts in ~0.1 s)
and Apache Kafka (``kafka``: a fresh single KRaft node per test from doa.local.apache_kafka,
~1.2-3 s to start, so each pytest process starts the next test's node in the background while a
test runs: :class:`Spare`; its jars are assembled with Maven on first use).
``DOA_TEST_BROKERS=tansu`` (or ``kafka``) runs one kind only. Where the two legitimately
differ, a test asks for ``broker_kind`` and says so, or is marked
``@pytest.mark.brokers("kafka", reason=...)`` (``where={"engine": "faust"}``: those cases
only): nothing is skipped silently.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from doa.local.embedded import EmbeddedBroker

if TYPE_CHECKING:
    from doa.local.apache_kafka import LocalKafka

ROOT = Path(__file__).resolve().parents[2]
COUNTING = str(ROOT / "tests" / "topologies" / "counting.py")
KINDS = ("tansu", "kafka")
SELECTED = [k.strip() for k in os.environ.get("DOA_TEST_BROKERS", ",".join(KINDS)).split(",")
            if k.strip()]

pytestmark = pytest.mark.broker


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "brokers(*kinds, reason, where={param: value}): run this broker test on "
                   "these broker kinds only (the reason says why the others differ); with "
                   "where, only its cases with those parameter values")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unknown = sorted(set(SELECTED) - set(KINDS))
    if unknown:
        raise pytest.UsageError(f"DOA_TEST_BROKERS: unknown broker kind(s) {unknown} "
                                f"(kinds: {', '.join(KINDS)})")
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or "broker_kind" not in callspec.params:
            continue
        kind = callspec.params["broker_kind"]
        for marker in item.iter_markers("brokers"):
            where = marker.kwargs.get("where", {})  # only the cases with these parameters
            if kind not in marker.args and all(callspec.params.get(k) == v
                                               for k, v in where.items()):
                reason = marker.kwargs.get("reason", "")
                item.add_marker(pytest.mark.skip(
                    reason=f"not on {kind}: {reason}" if reason else f"not on {kind}"))
                break
    # test_compose* wait for .ci/docker-prepare, which .ci/run starts in the background: last.
    items.sort(key=lambda item: item.nodeid.startswith("tests/integration/test_compose"))


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
    request.getfixturevalue("kafka_assembly")
    with SPARE.take() as k:
        yield k.address


class Started:
    """A LocalKafka started by a thread of its own, which lives as long as the node: the JVM
    dies with the thread that started it (``PR_SET_PDEATHSIG`` is per thread), so the thread
    waits until the node is stopped."""

    def __init__(self) -> None:
        self.node: LocalKafka | None = None
        self.error: BaseException | None = None
        self._up = threading.Event()
        self._done = threading.Event()
        threading.Thread(target=self._run, name="kafka-owner", daemon=True).start()

    def _run(self) -> None:
        from doa.local.apache_kafka import LocalKafka

        try:
            self.node = LocalKafka().start()
        except BaseException as exc:  # raised in the test that takes it
            self.error = exc
        self._up.set()
        self._done.wait()
        if self.node is not None:
            self.node.stop()

    def wait(self) -> LocalKafka:
        self._up.wait()
        if self.error is not None:
            raise self.error
        assert self.node is not None
        return self.node

    def release(self) -> None:
        """Stop the node (its thread does), and wait until it has."""
        self._done.set()
        self._up.wait()


class Spare:
    """A fresh Apache Kafka node started in the background, for the next test that needs one.

    A node takes ~1.2-3 s to start, mostly the JVM's own start-up (less with the class-data
    archive, :mod:`doa.local.kafka_classes`), while tests spend much of their
    time waiting on the broker or on child processes: starting the next node during a test
    hides most of it (~300 s of the suite's setup time on two workers). Each node is still
    used by one test only and thrown away after it.
    """

    def __init__(self) -> None:
        self._next: Started | None = None

    @contextlib.contextmanager
    def take(self) -> Iterator[LocalKafka]:
        """A started node while the context is open (the spare, if one is ready or starting;
        else one started now); the next one starts in the background meanwhile."""
        started, self._next = self._next or Started(), Started()
        try:
            node = started.wait()
            if not node.alive():  # died while it waited: one more
                started.release()
                started = Started()
                node = started.wait()
            yield node
        finally:
            started.release()

    def close(self) -> None:
        """Stop the spare, if one was started (at the end of the session)."""
        if self._next is not None:
            self._next.release()
            self._next = None


SPARE = Spare()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    SPARE.close()


PIPE_BYTES = 1 << 20  # /proc/sys/fs/pipe-max-size's default


def doa_process(*args: str, env: dict[str, str] | None = None,
                unset: tuple[str, ...] = ()) -> subprocess.Popen[bytes]:
    """Start ``doa ARGS`` as a child process (its own process group), with this process's
    environment less ``unset`` (e.g. ``DOA_BROKER``, for an embedded broker) plus ``env``.

    Its pipes hold 1 MiB each (Linux's default is 64 KiB): many tests read them only at the
    end or never, and a child whose pipe is full blocks on its next write and would not
    stop when told to."""
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.Popen(
        [sys.executable, "-m", "doa.cli.app", *args], cwd=ROOT,
        env={**environ, **(env or {})}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        start_new_session=True, pipesize=PIPE_BYTES)


def kill9(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
