"""docker-compose.yml for real: Apache Kafka, the fraud nodes and a client, in containers.

Needs a Docker engine and doa's images from ``.ci/docker-prepare`` (which ``.ci/run`` starts in
the background before the tests; this module runs last and waits for it). Without CI's marker
the test runs when that script's daemon answers, or prepares one itself with
``DOA_TEST_COMPOSE=1`` (root with apt: minutes). When no engine can be had it says why in one
line and is skipped; a broken image or stack fails.

The run: ``up -d --wait`` (Kafka healthy, prepare done, one container per node), the demo's
events published from a container, the scorer's container killed (``docker kill``) once it has
learned some labels and replaced (a new container: its state comes only from its state
topic), then predictions, outcomes, metrics and drift events read back over the compose network:
every transaction predicted and every label learned exactly once (the final metric counts
them: a lost state would count again from zero, a double-learned label would count twice),
none unmatched, no dead letters, at least one drift event; ``down -v`` at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.broker

ROOT = Path(__file__).resolve().parents[2]
HOME = Path(os.environ.get("DOA_DOCKER_HOME", "/tmp/doa-docker"))
CHECK = Path(__file__).with_name("compose_check.py")
PROJECT = "doa-compose-test"
N = 20_000  # transactions (and labels): 10 s of the demo's event time, replayed paced
KILL_AFTER = 1_000  # labels the scorer learned before its container is killed
PREPARE_TIMEOUT_S = 1200.0  # CI's background preparation: apt, mmdebstrap, two image builds
NO_ENGINE = ("apt", "dockerd")  # phases whose failure means "no engine here": skip, not fail


def _env() -> dict[str, str]:
    return {**os.environ, "DOCKER_HOST": f"unix://{HOME}/docker.sock",
            "DOCKER_CONFIG": str(HOME / "config"),
            "DOA_BASE_IMAGE": os.environ.get("DOA_BASE_IMAGE", "doa-base:bookworm")}


def _engine_answers() -> bool:
    try:
        return subprocess.run(["docker", "version"], env=_env(), capture_output=True,
                              timeout=20, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait_for_preparation(started_here: bool) -> None:
    """Wait (bounded) for .ci/docker-prepare's marker; skip or fail on its failure line."""
    deadline = time.monotonic() + PREPARE_TIMEOUT_S
    while not (HOME / "done").exists():
        failed = HOME / "failed"
        if failed.exists():
            line = failed.read_text().strip()
            if line.split(":")[0] in NO_ENGINE:
                pytest.skip(f"no Docker engine: {line}")
            pytest.fail(f".ci/docker-prepare failed: {line} (log: {HOME / 'prepare.log'})")
        if time.monotonic() > deadline:
            pytest.fail(f".ci/docker-prepare not done after {PREPARE_TIMEOUT_S:.0f} s "
                        f"(log: {HOME / 'prepare.log'})")
        time.sleep(1.0)
    if not started_here:
        print(f"docker prepared in the background: {(HOME / 'phases').read_text()!r}")


@pytest.fixture(scope="module")
def engine() -> Iterator[None]:
    """A Docker engine with doa's images, from .ci/docker-prepare (started here only with
    DOA_TEST_COMPOSE=1; stopped here if it was)."""
    if (HOME / "prepare.pid").exists() or (HOME / "done").exists():  # .ci/run's, or done
        _wait_for_preparation(started_here=False)
        yield
        return
    if os.environ.get("DOA_TEST_COMPOSE") != "1":
        pytest.skip("no Docker engine prepared (.ci/run prepares one as root with apt; "
                    "DOA_TEST_COMPOSE=1 lets this test do it: minutes)")
    prepared = subprocess.run([str(ROOT / ".ci" / "docker-prepare")], env=_env(),
                              check=False, timeout=PREPARE_TIMEOUT_S)
    try:
        if prepared.returncode != 0 or not _engine_answers():
            _wait_for_preparation(started_here=True)  # says why (skip or fail)
        yield
    finally:
        subprocess.run([str(ROOT / ".ci" / "docker-stop")], env=_env(), check=False,
                       timeout=300)


def compose(*args: str, timeout: float = 300.0, stdin: Path | None = None,
            check: bool = True) -> str:
    """``docker compose -p PROJECT ARGS`` in the repository; its stdout."""
    with open(stdin or os.devnull, "rb") as given:
        done = subprocess.run(["docker", "compose", "-p", PROJECT, *args], cwd=ROOT,
                              env=_env(), stdin=given, capture_output=True, timeout=timeout,
                              check=False)
    if check and done.returncode != 0:
        logs = subprocess.run(["docker", "compose", "-p", PROJECT, "logs", "--tail", "15"],
                              cwd=ROOT, env=_env(), capture_output=True, timeout=60,
                              check=False).stdout.decode(errors="replace")
        raise AssertionError(f"docker compose {' '.join(args)} exited {done.returncode}: "
                             f"{done.stderr.decode(errors='replace').strip()[-600:]}\n{logs}")
    return done.stdout.decode()


def docker(*args: str, timeout: float = 120.0) -> str:
    return subprocess.run(["docker", *args], env=_env(), capture_output=True, check=True,
                          timeout=timeout).stdout.decode().strip()


@pytest.fixture
def stack(engine: None) -> Iterator[dict[str, float]]:
    """The fraud stack up (without its source); ``down -v`` afterwards. Phase seconds."""
    times: dict[str, float] = {}
    began = time.monotonic()
    services = [s for s in compose("config", "--services").split() if s != "source"]
    try:
        compose("up", "-d", "--wait", "--no-build", *services)
        times["up"] = time.monotonic() - began
        yield times
    finally:
        compose("down", "-v", "--remove-orphans", "--timeout", "5", check=False)
        print("compose phases (s):", {k: round(v, 1) for k, v in times.items()})


def test_fraud_stack_survives_a_killed_node(stack: dict[str, float]) -> None:
    began = time.monotonic()
    source = compose("run", "-d", "--no-deps", "source", "deploy", "topologies/fraud.py",
                     "--publish-demo", str(N)).strip().splitlines()[-1]
    waited = json.loads(compose("exec", "-T", "kafka", "python", "-", "wait", str(KILL_AFTER),
                                "180", stdin=CHECK))
    assert waited["learned"] >= KILL_AFTER, waited
    old = compose("ps", "-q", "scorer").strip()
    docker("kill", old)
    stack["kill"] = time.monotonic() - began
    assert docker("inspect", "-f", "{{.State.ExitCode}}", old) == "137"  # SIGKILL
    compose("up", "-d", "--no-deps", "--force-recreate", "--wait", "scorer")
    new = compose("ps", "-q", "scorer").strip()
    assert new and new != old, "the scorer's container was not replaced"
    assert docker("wait", source, timeout=300) == "0", docker("logs", source)
    stack["published"] = time.monotonic() - began
    result = json.loads(compose("exec", "-T", "kafka", "python", "-", "check", str(N), "240",
                                stdin=CHECK))
    stack["checked"] = time.monotonic() - began
    print("after the kill at", waited["learned"], "labels:", result)
    last = result["last_metric"]
    assert last is not None and last["labels"] == N, result  # each label learned once
    assert result["outcomes"] == N and result["predicted"] == N, result
    assert result["outcome_repeats_disagreeing"] == 0, result
    assert result["records"]["unmatched"] == 0 and result["records"]["fraud.dlq"] == 0, result
    assert last["value"] == pytest.approx(result["correct"] / result["scored"], abs=1e-12)
    assert result["drift_positions"], f"no drift event: {result}"

    # walk 7: the Kafka container killed and started again came back empty (its logs were in
    # a directory the broker deletes); they are kept in the container now
    kafka = compose("ps", "-q", "kafka").strip()
    docker("kill", kafka)
    docker("start", kafka)
    compose("up", "-d", "--no-deps", "--wait", "kafka")
    again = json.loads(compose("exec", "-T", "kafka", "python", "-", "check", str(N), "120",
                               stdin=CHECK))
    stack["kafka restarted"] = time.monotonic() - began
    assert (again["ids"], again["outcomes"], again["last_metric"]) == (
        result["ids"], N, last), again


@pytest.mark.brokers("tansu", reason="doa deploy is doa run's prepare (covered on both "
                     "brokers); on Apache Kafka it runs in test_fraud_stack_survives_a_killed_node")
def test_deploy_prepares_then_publishes_the_demo(broker: str) -> None:
    from doa.client import Subscriber
    from doa.cluster.registry import read_registry
    from tests.integration.conftest import doa_process

    first = doa_process("deploy", "topologies/fraud.py", "--broker", broker)
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err.decode()
    assert b"11 streams, 11 new schema versions" in out, out
    again = doa_process("deploy", "topologies/fraud.py", "--broker", broker,
                        "--publish-demo", "300")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err.decode()
    assert b"0 new schema versions" in out and b"published 300 to transactions" in out, out
    assert len(read_registry(broker)) >= 11
    with Subscriber(["transactions", "labels"], broker=broker, from_beginning=True,
                    idle_timeout_s=2.0) as sub:
        txns = sorted(e["txn_id"] for e in sub if e.stream == "transactions")
    assert txns == list(range(300))
