"""Is the broker there? One quick TCP probe, so every command fails in seconds, in one line.

Kafka clients retry an unreachable bootstrap address for tens of seconds and then raise an
error that names their own classes. doa probes the addresses first (a TCP connect to each
``HOST:PORT`` of a comma-separated list, all within ``timeout_s``) and, when none answers,
raises :class:`BrokerUnreachable`: one line naming the address and what to check.

Examples
--------
>>> try:
...     check_reachable("127.0.0.1:1", timeout_s=1.0)
... except BrokerUnreachable as exc:
...     print(str(exc).split(";")[0])
broker 127.0.0.1:1 unreachable (connection refused)
>>> split_address("a:9092, b:9093")
[('a', 9092), ('b', 9093)]
"""

from __future__ import annotations

import socket
import time

from doa.errors import DoaError


class BrokerUnreachable(DoaError):
    """No address of a broker answered a TCP connect within the timeout."""

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
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
    reasons: list[str] = []
    for host, port in pairs:
        left = max(0.1, deadline - time.monotonic())
        try:
            with socket.create_connection((host, port), timeout=min(left, timeout_s)):
                return
        except ConnectionRefusedError:
            reasons.append("connection refused")
        except TimeoutError:
            reasons.append(f"no answer in {timeout_s:g} s")
        except socket.gaierror as exc:
            reasons.append(f"unknown host {host!r}: {exc.strerror}")
        except OSError as exc:
            reasons.append(exc.strerror or type(exc).__name__)
    raise BrokerUnreachable(address, "; ".join(dict.fromkeys(reasons)))


def reachable(address: str, timeout_s: float = 1.0) -> bool:
    """Whether :func:`check_reachable` passes (for status lines that poll)."""
    try:
        check_reachable(address, timeout_s)
    except DoaError:
        return False
    return True
