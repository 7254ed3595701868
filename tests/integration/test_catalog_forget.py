"""``doa catalog forget NAME``: a topology renamed or retired is forgotten at once, by one more
record on ``_doa_topologies`` (nothing is deleted: tansu never compacts, Kafka compacts by key).

After it, ``doa run``/``deploy``/``check --broker`` no longer count the topology's streams as
another's, and the catalog (so ``doa ui``) no longer lists it; a process of it started later
counts again. It refuses, in one line, a topology no description names and one that runs now.

Both brokers: on Kafka the topic is compacted, on tansu every record ever written stays.
"""

from __future__ import annotations

import time

import pytest
from click.testing import CliRunner

from doa.catalog.collect import collect
from doa.catalog.publish import Announcer
from doa.cli.app import cli
from doa.engines.launch import prepare
from doa.errors import DoaError
from tests.integration.helpers import doa_command
from tests.integration.test_foreign_writers import (  # flaky: the running topology's fixture
    HOUR_MS,
    describe,
    description,
    flaky,  # noqa: F401
    scoring,
)

pytestmark = pytest.mark.broker


def _forget(broker: str, name: str, *, before: bool = False) -> str:
    """``doa catalog forget NAME --broker BROKER`` (``before``: ``doa catalog --broker BROKER
    forget NAME``): its output (it must succeed)."""
    args = (["catalog", "--broker", broker, "forget", name] if before
            else ["catalog", "forget", name, "--broker", broker])
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, (result.output, result.exception)
    return " ".join(result.output.split())


def _topologies(broker: str) -> list[str]:
    c = collect(broker)
    assert sorted({n["topology"] for n in c["nodes"]}) == [t["name"] for t in c["topologies"]]
    return [t["name"] for t in c["topologies"]]


def test_a_forgotten_topology_no_longer_counts_nor_is_listed(broker: str) -> None:
    now = int(time.time() * 1000)
    old = scoring("old", "m")
    describe(broker, description(old, 1, now - 2 * HOUR_MS),
             description(old, 1, now - HOUR_MS, "stopped"),
             description(old, 2, now - HOUR_MS // 2, "stopped"),
             description(scoring("kept", "k", writes="kept.scores"), 3, now - 1000, "stopped"))
    with pytest.raises(DoaError, match=r"^stream 'scores' is written by node 'm' of topology "
                                       r"'old' \(not running"):
        prepare(scoring("walk", "fraud"), broker)
    assert _topologies(broker) == ["kept", "old"]

    assert _forget(broker, "old") == (
        f"forgot topology 'old' on {broker} (2 processes); it counts again when it runs again")

    prepare(scoring("walk", "fraud"), broker)  # old's stream is no other topology's now
    assert _topologies(broker) == ["kept"]  # the catalog, and so doa ui, leave it out
    c = collect(broker)
    assert not any(w["topology"] == "old" for s in c["streams"] for w in s["writers"])


def test_forget_refuses_an_unknown_topology_in_one_line(broker: str) -> None:
    now = int(time.time() * 1000)
    describe(broker, description(scoring("old", "m"), 1, now - HOUR_MS, "stopped"))

    result = doa_command("catalog", "forget", "olld", "--broker", broker)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"error: no topology 'olld' is described on {broker} (described: old)\n")

    _forget(broker, "old")
    result = doa_command("catalog", "forget", "old", "--broker", broker)
    assert result.returncode == 1
    assert result.stderr.decode() == (
        f"error: topology 'old' is forgotten on {broker} already (no process of it ran since)\n")


def test_forget_refuses_a_running_topology(broker: str, flaky: Announcer) -> None:  # noqa: F811
    result = CliRunner().invoke(cli, ["catalog", "forget", "walkvflaky", "--broker", broker])
    assert isinstance(result.exception, DoaError), result.output
    host, pid = flaky.description["host"], flaky.description["pid"]
    assert str(result.exception) == (
        f"topology 'walkvflaky' runs on {broker} now (process {host}:{pid} alive); stop it "
        "before forgetting it")
    with pytest.raises(DoaError, match=r"topology 'walkvflaky' \(running\)"):
        prepare(scoring("walk", "fraud"), broker)  # still counted

    flaky.stop(timeout_s=10)  # stopped: it may be forgotten
    _forget(broker, "walkvflaky")
    prepare(scoring("walk", "fraud"), broker)


def test_it_counts_again_when_a_process_of_it_starts(broker: str) -> None:
    now = int(time.time() * 1000)
    old = scoring("old", "m")
    describe(broker, description(old, 1, now - HOUR_MS, "stopped"))
    _forget(broker, "old")
    # a process forgotten while silent writes its stopped record late: still forgotten
    describe(broker, description(old, 1, now - HOUR_MS, "stopped"))
    prepare(scoring("walk", "fraud"), broker)

    describe(broker, description(old, 2, now))  # started again (even on a slower clock)
    with pytest.raises(DoaError, match=r"^stream 'scores' is written by node 'm' of topology "
                                       r"'old' \(running\)"):
        prepare(scoring("walk", "fraud"), broker)
    assert _topologies(broker) == ["old"]

    describe(broker, description(old, 2, now, "stopped"))
    assert _forget(broker, "old", before=True) == (
        f"forgot topology 'old' on {broker} (1 process); it counts again when it runs again")
    prepare(scoring("walk", "fraud"), broker)
    assert _topologies(broker) == []
