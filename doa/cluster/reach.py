"""Is the broker there? One quick probe, so every command fails in seconds, in one line.

Kafka clients retry an unreachable bootstrap address for tens of seconds and then raise an
error that names their own classes. doa probes the addresses first (a TCP connect to each
``HOST:PORT`` of a comma-separated list, then, unless the clients speak TLS, a Kafka
ApiVersions request on it, all within ``timeout_s``) and, when none answers, raises
:class:`BrokerUnreachable`: one line naming the address and what to check. The request
matters where a firewall or proxy takes every TCP connection and then says nothing, or
answers HTTP: the clients waited 30 s there before a ``KafkaTimeoutError``.

Examples
--------
>>> try:
...     check_reachable("127.0.0.1:1", timeout_s=1.0)
... except BrokerUnreachable as exc:
...     print(str(exc).split(";")[0])
broker 127.0.0.1:1 unreachable (connection refused)
>>> silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never answers
>>> try:
...     check_reachable("127.0.0.1:%d" % silent.getsockname()[1], timeout_s=0.5)
... except BrokerUnreachable as exc:
...     print(exc.reason)
a TCP connection opened, but nothing answered a Kafka request in 1.5 s
>>> silent.close()
>>> split_address("a:9092, b:9093")
[('a', 9092), ('b', 9093)]
"""

from __future__ import annotations

import socket
import struct
import time

from doa.errors import DoaError

_CORRELATION = 0x646F61  # ours, in a Kafka reply's header
_API_VERSIONS = struct.pack(">ihhih", 13, 18, 0, _CORRELATION, 3) + b"doa"  # v0, client "doa"
REPLY_FLOOR_S = 1.5  # a broker answers ApiVersions in milliseconds; a loaded one, still < 1 s


class BrokerUnreachable(DoaError):
    """No address of a broker answered a TCP connect within the timeout."""

    def __init__(self, address: str, reason: str, refused: bool = False) -> None:
        self.address = address
        self.reason = reason
        self.refused = refused  # every address refused: nothing listens there (yet)
        super().__init__(f"broker {address} unreachable ({reason}); check that it is running "
                         "and that --broker or DOA_BROKER names its HOST:PORT")


def split_address(address: str) -> list[tuple[str, int]]:
    """``"h1:p1,h2:p2"`` as ``[(h1, p1), (h2, p2)]``; a bad entry is a :class:`DoaError`."""
    pairs: list[tuple[str, int]] = []
    for part in address.split(","):
        part = part.strip()
        if part.startswith(("PLAINTEXT://", "SSL://", "SASL_PLAINTEXT://", "SASL_SSL://")):
            part = part.split("://", 1)[1]
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise DoaError(f"broker address {part!r} is not HOST:PORT (in {address!r})")
        pairs.append((host.strip("[]"), int(port)))
    return pairs


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Return once one of ``address``'s hosts accepts a TCP connection; else raise.

    Parameters
    ----------
    address : ``HOST:PORT`` or a comma-separated list of them (bootstrap servers)
    timeout_s : the time allowed for all of them together

    Raises
    ------
    BrokerUnreachable
        When no host accepted a connection in time; the message names the address.
    """
    pairs = split_address(address)
    deadline = time.monotonic() + timeout_s
    kafka = not _speaks_tls()
    reasons: list[str] = []
    for host, port in pairs:
        left = max(0.1, deadline - time.monotonic())
        try:
            with socket.create_connection((host, port), timeout=min(left, timeout_s)) as sock:
                why = _kafka_answers(sock, max(REPLY_FLOOR_S, deadline - time.monotonic())
                                     ) if kafka else None
                if why is None:
                    return
                reasons.append(why)
        except ConnectionRefusedError:
            reasons.append("connection refused")
        except TimeoutError:
            reasons.append(f"no answer in {timeout_s:g} s")
        except socket.gaierror as exc:
            reasons.append(f"unknown host {host!r}: {exc.strerror}")
        except OSError as exc:
            reasons.append(exc.strerror or type(exc).__name__)
    unique = list(dict.fromkeys(reasons))
    raise BrokerUnreachable(address, "; ".join(unique), refused=unique == ["connection refused"])


def _speaks_tls() -> bool:
    """Whether doa's clients speak TLS (a listener of that kind ignores a plain request; the
    TLS handshake is checked by :func:`doa.cluster.security.preflight`)."""
    from doa.cluster.security import setting

    try:
        protocol = setting("DOA_SECURITY_PROTOCOL", "security.protocol") or "PLAINTEXT"
    except DoaError:
        return False  # an unreadable config file is said by the clients' own set-up
    return protocol.upper() in ("SSL", "SASL_SSL")


def _kafka_answers(sock: socket.socket, wait_s: float) -> str | None:
    """None when ``sock``'s peer answers an ApiVersions request as a Kafka broker does (any
    version, any error: the header carries our correlation id); else why it is not one."""
    sock.settimeout(wait_s)
    head = b""
    try:
        sock.sendall(_API_VERSIONS)
        while len(head) < 8:
            chunk = sock.recv(8 - len(head))
            if not chunk:
                break
            head += chunk
    except TimeoutError:
        if not head:
            return (f"a TCP connection opened, but nothing answered a Kafka request in "
                    f"{round(wait_s, 1):g} s")
    except OSError as exc:
        return f"the connection was closed on a Kafka request ({exc.strerror or exc})"
    if len(head) == 8 and struct.unpack(">i", head[4:])[0] == _CORRELATION:
        return None
    if head.startswith(b"HTTP/"):
        return "an HTTP server answered, not a Kafka broker"
    if not head:
        return ("the connection was closed on a Kafka request (a TLS listener? doa speaks "
                "PLAINTEXT: set DOA_SECURITY_PROTOCOL)")
    return f"something answered, but not as a Kafka broker does ({head[:8]!r})"


def reachable(address: str, timeout_s: float = 1.0) -> bool:
    """Whether :func:`check_reachable` passes (for status lines that poll)."""
    try:
        check_reachable(address, timeout_s)
    except DoaError:
        return False
    return True
