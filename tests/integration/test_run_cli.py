"""`doa run` says what it does, and only that (issue 17, items 5-7), as a real process.

* An unreachable broker is one line naming the address, within seconds.
* The Kafka libraries' log lines go to the log file, not into the output; ``doa -v`` shows them.
* With the embedded broker, its address comes first (one can publish into it while it runs),
  and an idle run prints a status line only when something changed or every 10 s.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, ROOT, doa_process
from tests.integration.helpers import doa_command, doa_env, wait_until
from tests.integration.test_broker_outage import LIBRARY_LINES, Lines

pytestmark = pytest.mark.broker


def test_run_against_an_unreachable_broker_is_one_line_naming_it_in_seconds() -> None:
    began = time.monotonic()
    doa_command("--version")
    startup = time.monotonic() - began  # what any doa command takes here before it acts
    began = time.monotonic()
    done = doa_command("run", str(ROOT / "topologies" / "sensors.py"),
                       "--broker", "127.0.0.1:1", timeout=60)
    took = time.monotonic() - began
    text = done.stderr.decode()
    assert done.returncode == 1, text
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert lines[0].startswith("error: broker 127.0.0.1:1 unreachable"), text
    assert "unexpected" not in text and "KafkaConnectionError" not in text, text
    assert took < startup + 5, f"{took:.1f} s to say the broker is unreachable"


def _run(address: str, tmp_path: Path, *flags: str) -> subprocess.Popen[bytes]:
    """`doa [FLAGS] run COUNTING --broker ADDRESS` with its log in ``tmp_path``."""
    env = {"DOA_LOG_FILE": str(tmp_path / "doa.log"), "DOA_SHUTDOWN_GRACE_S": "2",
           "DOA_MAX_RECORDS": "20"}
    return doa_process(*flags, "run", COUNTING, "--broker", address, "--for", "8", env=env,
                       unset=("DOA_BROKER",))


@pytest.mark.parametrize("verbose", [False, True], ids=["quiet-logs", "with-v"])
def test_library_log_lines_go_to_the_log_file_unless_v(tmp_path: Path, verbose: bool) -> None:
    broker = EmbeddedBroker().start()
    try:
        prepare(load_topology(COUNTING), broker.address)
        proc = _run(broker.address, tmp_path, *(["-v"] if verbose else []))
        lines = Lines(proc)
        assert wait_until(lambda: lines.first(r"^\[") or proc.poll() is not None, 60), (
            lines.text())
    finally:
        broker.stop()  # the clients now log a line every few hundred ms
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    shown = lines.text() + out.decode()
    logged = (tmp_path / "doa.log").read_text()
    assert [x for x in LIBRARY_LINES[:3] if x in logged], "the broker's death left no log"
    leaked = [x for x in LIBRARY_LINES if x in shown]
    if verbose:
        assert leaked, f"-v must show the library logs:\n{shown}"
    else:
        assert not leaked, f"library log lines in the output of doa run:\n{shown}"


def test_embedded_broker_address_comes_first_and_an_idle_run_prints_little() -> None:
    for_s = 24
    proc = doa_process("run", COUNTING, "--for", str(for_s), unset=("DOA_BROKER",))
    lines = Lines(proc)
    try:
        found = wait_until(lambda: lines.first(r"embedded broker on (\S+);")
                           or proc.poll() is not None, 60)
        assert isinstance(found, tuple), lines.text()
        address = re.search(r"embedded broker on (\S+);", found[1]).group(1)  # type: ignore[union-attr]
        assert not lines.first(r"^\["), "the address must come before any status line"
        # Usable while it runs: publish into it, see the node take the records.
        assert wait_until(lambda: lines.first(r"^\[") or proc.poll() is not None, 60)
        with Publisher("events", broker=address, topology=load_topology(COUNTING)) as pub:
            for i in range(10):
                pub.send({"key": f"k{i % 3}", "n": i, "payload": "p"})
        assert wait_until(lambda: lines.first(r"count: in 10 out 10")
                          or proc.poll() is not None, 30), lines.text()
        proc.wait(timeout=for_s + 30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    text = lines.text()
    assert proc.returncode == 0, text
    status = [line for _, line in lines.items
              if line.startswith("[") and "partitions of" not in line]
    # One when it starts, one when the 10 records came, then one per 10 idle seconds.
    assert 2 <= len(status) <= 2 + for_s // 10 + 1, "\n".join(status)
    held = [line for _, line in lines.items if "partitions of" in line]
    assert len(held) == 1 and held[0].endswith("count: partitions of events: 0, 1, 2, 3"), (
        text)  # one process: its group gives it every partition, once


def test_run_says_it_compiles_numba_kernels_before_they_run(tmp_path: Path) -> None:
    """The first Numba compilation takes seconds: `doa run` says so instead of sitting
    silent (issue 17, progress for long steps)."""
    with EmbeddedBroker() as b:
        done = doa_command("run", str(ROOT / "topologies" / "fraud.py"), "--broker", b.address,
                           "--for", "3", timeout=120,
                           env=doa_env(DOA_LOG_FILE=str(tmp_path / "doa.log")))
    text = done.stderr.decode()
    assert done.returncode == 0, text
    assert "compiling Numba kernels for featurize (" in text, text
    assert "scorer" not in text.split("compiling Numba kernels for", 1)[1].splitlines()[0]
    quiet = doa_command("run", str(ROOT / "topologies" / "sensors.py"), "--for", "1", "-q",
                        timeout=120, env=doa_env(DOA_LOG_FILE=str(tmp_path / "doa.log")))
    assert "compiling" not in quiet.stderr.decode()
