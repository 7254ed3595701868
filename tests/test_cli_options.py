"""Options a user gets wrong are refused in one line, before anything starts (no broker
needed): a port already taken, a limit or a duration that cannot be meant, empty node names."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def doa(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "doa.cli.app", *args], capture_output=True,
                          text=True, cwd=REPO, timeout=timeout, check=False)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text, text
    return lines[0]


def test_a_broker_on_a_port_already_taken_is_refused() -> None:
    # Before: the broker already on the port answered doa's readiness probe, so `doa broker`
    # said "embedded broker on 127.0.0.1:PORT" and exited 0 once its own tansu had died.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        began = time.monotonic()
        done = doa("broker", "--port", str(port))
        took = time.monotonic() - began
    assert done.returncode == 1, done.stderr
    line = one_line(done.stderr)
    assert line.startswith(f"error: port {port} on 127.0.0.1 is in use"), line
    assert "embedded broker on" not in done.stderr + done.stdout
    assert took < 20, took


@pytest.mark.parametrize(("args", "option"), [
    (("subscribe", "events", "--broker", "127.0.0.1:1", "--limit", "0"), "'--limit'"),
    (("subscribe", "events", "--broker", "127.0.0.1:1", "-n", "-3"), "'--limit'"),
    (("run", "topologies/sensors.py", "--for", "0"), "'--for'"),
    (("run", "topologies/sensors.py", "--for", "-1"), "'--for'"),
    (("run", "topologies/sensors.py", "--nodes", ""), "'--nodes'"),
    (("run", "topologies/sensors.py", "--nodes", ","), "'--nodes'"),
    (("dlq", "topologies/sensors.py", "--limit", "-1"), "'--limit'"),
], ids=["limit-0", "limit-negative", "for-0", "for-negative", "nodes-empty", "nodes-comma",
        "dlq-limit-negative"])
def test_a_value_that_cannot_be_meant_is_refused(args: tuple[str, ...], option: str) -> None:
    # Before: --limit 0 and -3 printed one record, --for 0 and -1 ran ~2 s and exited 0,
    # --nodes "" ran every node.
    done = doa(*args)
    assert done.returncode == 2, (done.returncode, done.stderr)
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and option in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def test_an_integer_beyond_64_bits_is_named_as_written() -> None:
    from doa.cli.streams import _valid_lines
    from doa.errors import DoaError
    from doa.topology.loader import load_topology

    encode = load_topology(str(REPO / "topologies" / "sensors.py")).codec("readings").encode
    line = ('{"sensor_id": "s1", "ts": 99999999999999999999999, "value": 1.5, '
            '"location": {"lat": 1.0, "lon": 2.0}}')
    with pytest.raises(DoaError) as caught:
        _valid_lines([line], encode)
    # orjson reads the literal as the float 1e+23: the error said "got float 1e+23"
    assert str(caught.value) == ("line 1: stream 'readings': field reading.ts expected long, "
                                 "got int 99999999999999999999999 (out of the long's 64-bit "
                                 "range); nothing was published")


def test_a_line_that_is_not_json_is_named_once() -> None:
    from doa.cli.streams import _valid_lines
    from doa.errors import DoaError

    with pytest.raises(DoaError) as caught:
        _valid_lines(['{"a": 1}\n', '{"a": 1\n'], lambda record: None)
    # was "line 2: not valid JSON (unexpected end of data: line 2 column 1 (char 8))": orjson
    # counted the line's own newline as a second line
    assert str(caught.value) == ("line 2, column 8: not valid JSON (unexpected end of data); "
                                 "nothing was published")


def test_prepare_against_an_unreachable_broker_is_one_line_in_seconds() -> None:
    # the Python API a Faust app calls (examples/faust_app.py): it raised aiokafka's
    # KafkaConnectionError "Unable to bootstrap from [('127.0.0.1', 1, ...)]"
    from doa.cluster.reach import BrokerUnreachable
    from doa.engines.launch import prepare
    from doa.topology.loader import load_topology

    t = load_topology(str(REPO / "topologies" / "sensors.py"))
    began = time.monotonic()
    with pytest.raises(BrokerUnreachable) as caught:
        prepare(t, "127.0.0.1:1")
    assert time.monotonic() - began < 10
    assert "127.0.0.1:1" in str(caught.value) and "\n" not in str(caught.value)


def test_run_says_a_topologys_problems_before_anything_else(tmp_path: Path) -> None:
    # walkthrough: "compiling Numba kernels for fraud ..." came first, then the problem
    source = (REPO / "topologies" / "fraud.py").read_text()
    broken = tmp_path / "fraud_broken.py"
    broken.write_text(source.replace('label="is_fraud"', 'label="is_frod"'))
    assert broken.read_text() != source
    (tmp_path / "schemas").symlink_to(REPO / "schemas")
    import os

    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}  # no broker is reached
    done = subprocess.run([sys.executable, "-m", "doa.cli.app", "run", str(broken), "--for", "1"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, env=env,
                          check=False)
    assert done.returncode == 1
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: "), done.stderr
    assert "is_frod" in done.stderr and "compiling" not in done.stderr, done.stderr
