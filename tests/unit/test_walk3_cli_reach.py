"""A broker address where something takes the TCP connection but no Kafka broker answers.

Newcomer walk: ``doa catalog --broker 10.255.255.1:9092`` (and subscribe, publish, dlq, run,
deploy) waited ~30 s, then ``error: unexpected KafkaTimeoutError: ... Unable to bootstrap``:
a proxy or firewall there took every connection, so the TCP probe passed. ``doa deploy
--broker 127.0.0.1:1`` (a refused port) waited its 60 s ``--wait`` silently.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doa.cluster.reach import BrokerUnreachable, check_reachable, reachable

REPO = Path(__file__).resolve().parents[2]
SENSORS = str(REPO / "topologies" / "sensors.py")


@pytest.fixture
def silent() -> Iterator[str]:
    """An address whose listener never accepts: the kernel completes every handshake."""
    server = socket.create_server(("127.0.0.1", 0), backlog=64)
    yield f"127.0.0.1:{server.getsockname()[1]}"
    server.close()


@pytest.fixture
def http() -> Iterator[str]:
    """An address that answers every request as an HTTP proxy does (400, then close)."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    conn.recv(1024)
                    conn.sendall(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.getsockname()[1]}"
    done.set()
    thread.join()
    server.close()


def doa(*args: str, timeout: float = 45) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "doa.cli.app", *args], capture_output=True,
                          text=True, cwd=REPO, env=env, timeout=timeout, check=False)
    return done, time.monotonic() - began


def test_a_listener_that_never_answers_is_unreachable_in_the_time_given(silent: str) -> None:
    began = time.monotonic()
    with pytest.raises(BrokerUnreachable) as caught:
        check_reachable(silent, timeout_s=2.0)
    assert time.monotonic() - began < 4
    assert caught.value.reason == ("a TCP connection opened, but nothing answered a Kafka "
                                   "request in 2 s")
    assert not caught.value.refused and not reachable(silent, 1.0)


def test_a_server_answering_http_is_not_a_broker(http: str) -> None:
    with pytest.raises(BrokerUnreachable) as caught:
        check_reachable(http, timeout_s=2.0)
    assert caught.value.reason == "an HTTP server answered, not a Kafka broker"
    assert str(caught.value).startswith(f"broker {http} unreachable (an HTTP server")


def test_one_answering_address_of_a_list_is_enough(silent: str) -> None:
    # a Kafka-shaped reply: size, then our correlation id (any body)
    server = socket.create_server(("127.0.0.1", 0))
    answered = threading.Thread(target=_answer_once, args=(server,), daemon=True)
    answered.start()
    check_reachable(f"{silent},127.0.0.1:{server.getsockname()[1]}", timeout_s=3.0)
    answered.join(5)
    server.close()


def _answer_once(server: socket.socket) -> None:
    conn, _ = server.accept()
    with conn:
        request = conn.recv(1024)
        correlation = request[8:12]  # size, api key, api version, then the correlation id
        conn.sendall(b"\x00\x00\x00\x06" + correlation + b"\x00\x23")


@pytest.mark.parametrize("args", [
    ("catalog",), ("subscribe", "readings"), ("publish", "readings"), ("dlq", SENSORS),
    ("run", SENSORS), ("deploy", SENSORS, "--wait", "5"),
], ids=["catalog", "subscribe", "publish", "dlq", "run", "deploy"])
def test_every_broker_command_says_nothing_answered_in_one_line(
        silent: str, args: tuple[str, ...]) -> None:
    done, took = doa(*args, "--broker", silent)
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"error: broker {silent} unreachable (a TCP connection "
                                  "opened, but nothing answered a Kafka request in"), done.stderr
    assert took < 12, took  # was ~30 s, then KafkaTimeoutError


def test_deploy_says_at_once_that_it_waits_for_a_refused_port() -> None:
    done, took = doa("deploy", SENSORS, "--broker", "127.0.0.1:1", "--wait", "2")
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0] == ("broker 127.0.0.1:1: connection refused; waiting up to 2 s for it to "
                        "listen (--wait 0: not at all)")
    assert lines[1].startswith("error: broker 127.0.0.1:1 unreachable (connection refused for "
                               "2 s of --wait)")
    assert took < 10


def test_deploy_does_not_wait_for_a_server_that_is_not_kafka(http: str) -> None:
    done, took = doa("deploy", SENSORS, "--broker", http)  # --wait 60 by default
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert "an HTTP server answered, not a Kafka broker" in done.stderr
    assert took < 12, took
