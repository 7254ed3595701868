"""Client security for secured Kafka clusters: SASL (PLAIN, SCRAM) and TLS, for every client.

Every Kafka client doa creates (the engines' consumers and producers, publishers,
subscribers, the admin and registry clients, dead-letter replay) takes its security settings
from one place: :func:`client_security`. They come from the environment, or from a client
config file named by ``DOA_KAFKA_CONFIG`` in the Kafka/librdkafka property style (the
environment wins where both say something):

==========================  ==============================  ===================================
environment                 config file property            meaning
==========================  ==============================  ===================================
``DOA_SECURITY_PROTOCOL``   ``security.protocol``           PLAINTEXT, SSL, SASL_PLAINTEXT,
                                                            SASL_SSL
``DOA_SASL_MECHANISM``      ``sasl.mechanism``              PLAIN, SCRAM-SHA-256, SCRAM-SHA-512
``DOA_SASL_USERNAME``       ``sasl.username``               the SASL user
``DOA_SASL_PASSWORD``       ``sasl.password``               its password
``DOA_SSL_CAFILE``          ``ssl.ca.location``             CA certificate(s) to trust (PEM)
``DOA_SSL_CERTFILE``        ``ssl.certificate.location``    client certificate (mutual TLS)
``DOA_SSL_KEYFILE``         ``ssl.key.location``            its private key
==========================  ==============================  ===================================

Examples
--------
>>> s = client_security({"DOA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
...                      "DOA_SASL_MECHANISM": "SCRAM-SHA-256",
...                      "DOA_SASL_USERNAME": "alice", "DOA_SASL_PASSWORD": "secret"})
>>> s.describe()
'SASL_PLAINTEXT with SCRAM-SHA-256 as alice'
>>> sorted(s.kafka_python())
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> client_security({}).kafka_python()
{}
>>> client_security({"DOA_SECURITY_PROTOCOL": "SASL_PLAINTEXT"})
Traceback (most recent call last):
...
doa.errors.DoaError: DOA_SECURITY_PROTOCOL=SASL_PLAINTEXT needs DOA_SASL_MECHANISM, ...
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from doa.errors import DoaError

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_SETTINGS = {  # field: (environment variable, config file property)
    "protocol": ("DOA_SECURITY_PROTOCOL", "security.protocol"),
    "mechanism": ("DOA_SASL_MECHANISM", "sasl.mechanism"),
    "username": ("DOA_SASL_USERNAME", "sasl.username"),
    "password": ("DOA_SASL_PASSWORD", "sasl.password"),
    "cafile": ("DOA_SSL_CAFILE", "ssl.ca.location"),
    "certfile": ("DOA_SSL_CERTFILE", "ssl.certificate.location"),
    "keyfile": ("DOA_SSL_KEYFILE", "ssl.key.location"),
}
ENV_CONFIG = "DOA_KAFKA_CONFIG"


@dataclass(frozen=True)
class ClientSecurity:
    """How doa's Kafka clients authenticate and encrypt; see the module docstring."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = None
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """One line for errors and logs (never the password)."""
        text = self.protocol
        if self.sasl:
            text += f" with {self.mechanism} as {self.username}"
        if self.tls and self.cafile:
            text += f", trusting {self.cafile}"
        return text

    def _sasl(self) -> dict[str, Any]:
        out: dict[str, Any] = {"security_protocol": self.protocol}
        if self.sasl:
            out.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                       sasl_plain_password=self.password)
        return out

    def kafka_python(self) -> dict[str, Any]:
        """Keyword arguments for kafka-python's clients (none for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = self._sasl()
        if self.tls:
            out.update({k: v for k, v in (("ssl_cafile", self.cafile),
                                          ("ssl_certfile", self.certfile),
                                          ("ssl_keyfile", self.keyfile)) if v})
            out["ssl_check_hostname"] = True
        return out

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's clients (none for PLAINTEXT)."""
        if self.protocol == "PLAINTEXT":
            return {}
        out = self._sasl()
        if self.tls:
            out["ssl_context"] = self.ssl_context()
        return out

    def ssl_context(self) -> Any:
        """An :class:`ssl.SSLContext` trusting ``cafile`` (and presenting the client cert)."""
        import ssl

        context = ssl.create_default_context(cafile=self.cafile)
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context


def read_config_file(path: str | Path) -> dict[str, str]:
    """``key=value`` lines of a Kafka client config file (``#`` comments, blank lines)."""
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise DoaError(f"{ENV_CONFIG}={path}: cannot read it ({e.strerror})") from e
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DoaError(f"{path}:{number}: expected key=value, got {line!r}")
        out[key.strip()] = value.strip()
    return out


def setting(variable: str, prop: str, env: Mapping[str, str] | None = None) -> str | None:
    """One setting: environment variable ``variable``, else property ``prop`` of the
    ``DOA_KAFKA_CONFIG`` file, else None (used for ``DOA_SIGNING_KEY``/``doa.signing.key``).

    >>> setting("DOA_SIGNING_KEY", "doa.signing.key", {"DOA_SIGNING_KEY": "k"})
    'k'
    >>> setting("DOA_SIGNING_KEY", "doa.signing.key", {}) is None
    True
    """
    env = os.environ if env is None else env
    if env.get(variable):
        return env[variable]
    from_file = read_config_file(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else {}
    return from_file.get(prop) or None


def client_security(env: Mapping[str, str] | None = None) -> ClientSecurity:
    """The security settings of doa's clients, from ``env`` (default: ``os.environ``)."""
    env = os.environ if env is None else env
    from_file = read_config_file(env[ENV_CONFIG]) if env.get(ENV_CONFIG) else {}
    values: dict[str, str] = {}
    for field, (variable, prop) in _SETTINGS.items():
        value = env.get(variable) or from_file.get(prop)
        if field == "mechanism" and not value:
            value = from_file.get("sasl.mechanisms")  # librdkafka's spelling
        if value:
            values[field] = value
    protocol = values.get("protocol", "PLAINTEXT").upper()
    if protocol not in PROTOCOLS:
        raise DoaError(f"DOA_SECURITY_PROTOCOL={protocol}: not one of {', '.join(PROTOCOLS)}")
    values["protocol"] = protocol
    if protocol.startswith("SASL_"):
        if not all(values.get(k) for k in ("mechanism", "username", "password")):
            raise DoaError(f"DOA_SECURITY_PROTOCOL={protocol} needs DOA_SASL_MECHANISM, "
                           f"DOA_SASL_USERNAME and DOA_SASL_PASSWORD (or sasl.* in "
                           f"{ENV_CONFIG})")
        values["mechanism"] = values["mechanism"].upper()
        if values["mechanism"] not in MECHANISMS:
            raise DoaError(f"DOA_SASL_MECHANISM={values['mechanism']}: not one of "
                           f"{', '.join(MECHANISMS)}")
    if protocol in ("SSL", "SASL_SSL"):
        for field in ("cafile", "certfile", "keyfile"):
            path = values.get(field)
            if path and not os.path.isfile(path):  # local: not the broker's refusal
                variable, prop = _SETTINGS[field]
                raise DoaError(f"{variable} (or {prop}): no file {path}")
    return ClientSecurity(**values)


def authentication_error(address: str, security: ClientSecurity, error: BaseException) -> str:
    """The one line for a client that the broker refused (or that could not authenticate)."""
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    reason = re.sub(r":?\s*<AIOKafkaConnection[^>]*>", "", reason)  # the client's repr: noise
    if "SSL" in type(error).__name__ or "CERTIFICATE" in reason:
        return (f"cannot trust broker {address} over {security.describe()} (set DOA_SSL_CAFILE "
                f"to its CA): {reason}")
    return f"broker {address} refused {security.describe()}: {reason}"


_CHECKED: set[tuple[str, ClientSecurity]] = set()
TLS_HANDSHAKE_S = 3.0  # a broker answers a TLS hello in milliseconds


def preflight(address: str, security: ClientSecurity) -> None:
    """Authenticate once per process to a broker of ``address`` with ``security``.

    Clients left alone retry a refused login for their whole timeout (kafka-python: 30 s,
    silently); this fails in well under a second with one line naming the broker, the
    protocol and the mechanism. Nothing is checked for PLAINTEXT.
    """
    if security.protocol == "PLAINTEXT" or (address, security) in _CHECKED:
        return
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    async def connect(host: str, port: int) -> None:
        import logging

        from aiokafka.conn import create_conn

        quiet = logging.getLogger("aiokafka.conn")  # PLAIN without TLS: the clients warn
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            conn = await create_conn(host, port, request_timeout_ms=10_000,
                                     **security.aiokafka())
        finally:
            quiet.setLevel(level)
        conn.close()

    failure: BaseException | None = None
    for broker in address.split(","):
        host, _, port = broker.strip().rpartition(":")
        if security.tls:
            _tls_answers(host, int(port), security)
        try:  # in a thread of its own: callers may be inside a running event loop
            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, connect(host, int(port))).result()
        except Exception as e:
            failure = e
            if type(e).__name__ in ("SaslAuthenticationFailed", "SSLError",
                                    "SSLCertVerificationError", "UnsupportedSaslMechanism"):
                break  # the broker answered and refused: the others would too
            continue
        _CHECKED.add((address, security))
        return
    assert failure is not None
    raise DoaError(authentication_error(address, security, failure)) from failure


def _tls_answers(host: str, port: int, security: ClientSecurity) -> None:
    """Raise one line if ``host:port`` takes a TCP connection but no TLS handshake.

    A plaintext listener reads a TLS hello as the start of a request and waits for the rest
    (tansu) or closes the connection (Apache Kafka): the clients then report a bare timeout
    after their whole request timeout, or a reset connection. A refused connection or a
    failed certificate check is left to the login check after this one.
    """
    import socket
    import ssl

    try:
        sock = socket.create_connection((host, port), timeout=TLS_HANDSHAKE_S)
    except OSError:
        return
    try:
        security.ssl_context().wrap_socket(sock, server_hostname=host).close()
    except TimeoutError:
        raise DoaError(f"broker {host}:{port} did not answer a TLS handshake within "
                       f"{TLS_HANDSHAKE_S:g} s: is it a PLAINTEXT listener? (doa speaks "
                       f"{security.protocol})") from None
    except (ssl.SSLEOFError, ConnectionResetError):
        raise DoaError(f"broker {host}:{port} closed the connection on a TLS handshake: is it "
                       f"a PLAINTEXT listener? (doa speaks {security.protocol})") from None
    except (OSError, ssl.SSLError):
        return
    finally:
        sock.close()


def kafka_python_options(address: str) -> dict[str, Any]:
    """kafka-python keyword arguments for a client of ``address`` (checked once)."""
    security = client_security()
    preflight(address, security)
    return security.kafka_python()


def aiokafka_options(address: str) -> dict[str, Any]:
    """aiokafka keyword arguments for a client of ``address`` (checked once)."""
    security = client_security()
    preflight(address, security)
    return security.aiokafka()
