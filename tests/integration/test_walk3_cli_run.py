"""``doa run``'s stop line says when the embedded broker it started took its data with it; a
real broker (tansu, Apache Kafka) passes the probe that refuses what is not Kafka; and
``doa publish`` sends nothing from a file with bad lines, naming every one.

Newcomer walk: ``stopped by SIGTERM; broker 127.0.0.1:38925`` did not say that every stream
and dead letter was gone with the embedded broker (only the start line said "in memory").
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from doa.cluster.reach import check_reachable
from tests.integration.conftest import COUNTING, ROOT

pytestmark = pytest.mark.broker


def doa(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}
    return subprocess.run([sys.executable, "-m", "doa.cli.app", *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, timeout=90, check=False, input=stdin)


def test_the_stop_line_says_the_embedded_brokers_data_is_gone() -> None:
    done = doa("run", COUNTING, "--for", "1s", "-q")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("stopped by time; broker 127.0.0.1:"), done.stdout
    assert last.endswith(" (embedded, in memory: stopped with doa, its streams and dead "
                         "letters are gone)"), done.stdout


def test_a_broker_given_keeps_its_data_and_the_stop_line_says_nothing_of_it(
        broker: str) -> None:
    began = time.monotonic()
    check_reachable(broker, timeout_s=2.0)  # answers the Kafka request of the probe
    assert time.monotonic() - began < 2
    done = doa("run", COUNTING, "--for", "1", "-q", "--broker", broker)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == f"stopped by time; broker {broker}"


def test_a_file_with_bad_lines_sends_nothing_and_names_each(broker: str,
                                                            tmp_path: Path) -> None:
    assert doa("deploy", COUNTING, "--broker", broker).returncode == 0
    good = '{"key": "a", "n": 1}'
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([good, '{"key": "a", "n": NaN}', good, "[1]", "{"]) + "\n")
    done = doa("publish", "events", "--broker", broker, "--file", str(bad))
    assert done.returncode == 1, done.stderr
    said = done.stderr.splitlines()
    assert said[0] == "error: 3 bad lines; nothing was published:", done.stderr
    assert [line.split(":")[0] for line in said[1:]] == ["  line 2, column 19",
                                                           "  line 4", "  line 5, column 2"]
    read = doa("subscribe", "events", "--broker", broker, "--from-beginning",
               "--idle", "2")
    assert read.stdout == "", read.stdout
