"""``doa run --for`` (and ``doa deploy --wait``) take 30s, 1m, 1h as well as seconds.

Newcomer walk: ``doa run --for 1m`` said "'1m' is not a valid float range".
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from doa.cli.deploy import deploy_cmd
from doa.cli.options import Duration
from doa.cli.streams import run_cmd
from doa.cluster.reach import BrokerUnreachable


@pytest.mark.parametrize(("text", "seconds"), [
    ("60", 60.0), ("1.5", 1.5), ("30s", 30.0), ("1m", 60.0), ("1.5m", 90.0), ("2h", 7200.0),
    (" 10 s ", 10.0), (".5", 0.5)])
def test_a_duration_is_seconds(text: str, seconds: float) -> None:
    assert Duration().convert(text, None, None) == seconds


@pytest.mark.parametrize(("text", "said"), [
    ("1x", "'1x' is not a duration: seconds (60) or with a unit (30s, 1m, 1h)"),
    ("1m30s", "'1m30s' is not a duration"), ("0", "'0': give a time above 0, e.g. 60 or 1m"),
    ("-1m", "'-1m': give a time above 0")])
def test_run_for_says_what_a_duration_is(text: str, said: str) -> None:
    result = CliRunner().invoke(run_cmd, ["topologies/sensors.py", "--for", text])
    assert result.exit_code == 2
    assert f"Invalid value for '--for': {said}" in result.output, result.output


@pytest.fixture
def sigterm_kept() -> Iterator[None]:
    """``doa run`` sets its own SIGTERM handler: this process keeps its own."""
    before = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.mark.usefixtures("sigterm_kept")
def test_run_for_one_minute_is_taken() -> None:
    # it got as far as the broker: --for was parsed
    result = CliRunner().invoke(run_cmd, ["topologies/sensors.py", "--for", "1m",
                                          "--broker", "127.0.0.1:1"])
    assert isinstance(result.exception, BrokerUnreachable), result.output


def test_deploy_wait_takes_a_duration_and_zero() -> None:
    result = CliRunner().invoke(deploy_cmd, ["topologies/sensors.py", "--wait", "0s",
                                             "--broker", "127.0.0.1:1"])
    assert isinstance(result.exception, BrokerUnreachable), result.output
    assert result.exception.reason == "connection refused"
