"""A secured Apache Kafka (SASL_PLAINTEXT with SCRAM): every client doa creates authenticates.

The local Kafka (doa.local.apache_kafka, ``users=``) takes SASL logins on its client port; its
brokers talk PLAINTEXT among themselves on internal ports. The security settings reach doa
from the environment or from a client config file (``DOA_KAFKA_CONFIG``) and go to the
runtime engines, the publisher, the subscriber, the admin and registry clients. Right
credentials work end to end; wrong ones fail within seconds with one line naming the broker
and the mechanism. tansu has no SASL at all, so this runs on Kafka only.
"""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.errors import DoaError
from doa.local.apache_kafka import LocalKafka
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, doa_env, drain, read_stream

pytestmark = [pytest.mark.broker, pytest.mark.usefixtures("kafka_assembly")]

USERS = {"alice": "alice-secret", "bob": "bob-secret"}
VARIABLES = ("DOA_SECURITY_PROTOCOL", "DOA_SASL_MECHANISM", "DOA_SASL_USERNAME",
             "DOA_SASL_PASSWORD", "DOA_KAFKA_CONFIG")


@pytest.fixture(scope="module")
def secured() -> Iterator[str]:
    with LocalKafka(users=USERS) as kafka:
        yield kafka.address


def _sasl(user: str, password: str, mechanism: str = "SCRAM-SHA-256") -> dict[str, str]:
    return {"DOA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "DOA_SASL_MECHANISM": mechanism,
            "DOA_SASL_USERNAME": user, "DOA_SASL_PASSWORD": password}


@pytest.fixture
def as_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    yield monkeypatch


def test_with_scram_credentials_every_client_works_end_to_end(
        secured: str, as_env: pytest.MonkeyPatch) -> None:
    for name, value in _sasl("alice", USERS["alice"]).items():
        as_env.setenv(name, value)
    topology = load_topology(COUNTING)
    prepare(topology, secured)  # admin (topics) and registry (schemas)
    sent = [{"key": f"k{i % 5}", "n": i, "payload": ""} for i in range(500)]
    with Publisher("events", broker=secured, topology=topology) as pub:
        for rec in sent:
            pub.send(rec)
    report = drain(topology, secured, len(sent), timeout=60)  # the kafka engine's clients
    assert report.stats["count"].records_in == len(sent)
    outputs = read_stream(secured, topology, "counts", len(sent))  # the subscriber
    finals: dict[str, int] = {}
    for e in outputs:
        finals[e["key"]] = max(finals.get(e["key"], 0), e["count"])
    assert finals == dict(Counter(str(r["key"]) for r in sent))


def test_a_client_config_file_works_too_with_scram_sha_512(
        secured: str, as_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("# as for any Kafka client\nsecurity.protocol=SASL_PLAINTEXT\n"
                      "sasl.mechanism=SCRAM-SHA-512\nsasl.username=bob\n"
                      f"sasl.password={USERS['bob']}\n")
    as_env.setenv("DOA_KAFKA_CONFIG", str(config))
    done = doa_command("publish", "events", "--broker", secured, "--topology", COUNTING,
                       input=b'{"key": "a", "n": 1, "payload": ""}\n',
                       env=doa_env(**{"DOA_KAFKA_CONFIG": str(config)}))
    assert done.returncode == 0, done.stderr.decode()
    topology = load_topology(COUNTING)
    got = [e for e in read_stream(secured, topology, "events", idle_s=2) if e["key"] == "a"]
    assert [(e["key"], e["n"]) for e in got] == [("a", 1)]


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "PLAIN"])
def test_wrong_credentials_fail_fast_with_one_line(secured: str, mechanism: str) -> None:
    env = doa_env(unset=("DOA_BROKER", *VARIABLES), **_sasl("alice", "wrong", mechanism))
    began = time.monotonic()
    done = doa_command("run", COUNTING, "--broker", secured, "--for", "30", env=env,
                       timeout=60)
    took = time.monotonic() - began
    assert done.returncode == 1
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"error: broker {secured} refused SASL_PLAINTEXT with "
                               f"{mechanism} as alice: "), lines[0]
    assert "Authentication failed" in lines[0]
    assert took < 15, f"a refused login took {took:.1f} s to report"


def test_a_plaintext_client_of_a_sasl_port_and_bad_settings_are_reported(
        secured: str, as_env: pytest.MonkeyPatch) -> None:
    from doa.cluster.security import client_security, preflight

    with pytest.raises(DoaError, match="DOA_SASL_MECHANISM=GSSAPI: not one of"):
        client_security({**_sasl("alice", "x"), "DOA_SASL_MECHANISM": "GSSAPI"})
    with pytest.raises(DoaError, match=r"DOA_KAFKA_CONFIG=/nonexistent.*cannot read"):
        client_security({"DOA_KAFKA_CONFIG": "/nonexistent/client.properties"})
    with pytest.raises(DoaError, match=f"broker {secured} refused SASL_PLAINTEXT with "
                                       "SCRAM-SHA-256 as mallory"):
        preflight(secured, client_security(_sasl("mallory", "x")))
    assert os.environ.get("DOA_SECURITY_PROTOCOL") is None


def test_the_faust_engine_authenticates_too(secured: str, as_env: pytest.MonkeyPatch) -> None:
    import asyncio

    from doa.engines.launch import run_nodes

    for name, value in _sasl("bob", USERS["bob"], "SCRAM-SHA-512").items():
        as_env.setenv(name, value)
    topology = load_topology(COUNTING)
    prepare(topology, secured)
    with Publisher("events", broker=secured, topology=topology) as pub:
        for i in range(50):
            pub.send({"key": "faust", "n": i, "payload": ""})

    def done(stats: dict[str, Any]) -> bool:
        return bool(stats["count"].records_in >= 50)

    report = asyncio.run(run_nodes(topology, secured, ["count"], seconds=60, signals=False,
                                   engine="faust", until=done))
    assert report.stats["count"].records_in >= 50
    outputs = [e for e in read_stream(secured, topology, "counts", idle_s=1.5)
               if e["key"] == "faust"]
    assert sorted(e["count"] for e in outputs) == list(range(1, 51))


# -- TLS: SASL_SSL with a CA made here ------------------------------------------------------


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.fail("the TLS test needs the openssl command (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
            "-out", "ca.pem", "-days", "2", "-subj", "/CN=doa test CA")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key",
            "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    (d / "server.pem").write_text((d / "server.key").read_text() + (d / "server.crt").read_text())
    return d


def test_sasl_ssl_works_with_the_ca_and_fails_in_one_line_without_it(
        certificates: Path, as_env: pytest.MonkeyPatch) -> None:
    with LocalKafka(users=USERS, keystore=certificates / "server.pem") as kafka:
        address = kafka.address
        tls = {"DOA_SECURITY_PROTOCOL": "SASL_SSL", "DOA_SASL_MECHANISM": "SCRAM-SHA-256",
               "DOA_SASL_USERNAME": "alice", "DOA_SASL_PASSWORD": USERS["alice"]}
        env = doa_env(unset=("DOA_BROKER", *VARIABLES), **tls)
        done = doa_command("run", COUNTING, "--broker", address, "--for", "30", env=env)
        assert done.returncode == 1
        lines = done.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"error: cannot trust broker {address} over SASL_SSL"), lines
        assert "CERTIFICATE_VERIFY_FAILED" in lines[0]

        for name, value in {**tls, "DOA_SSL_CAFILE": str(certificates / "ca.pem")}.items():
            as_env.setenv(name, value)
        topology = load_topology(COUNTING)
        prepare(topology, address)
        with Publisher("events", broker=address, topology=topology) as pub:
            for i in range(100):
                pub.send({"key": f"k{i % 3}", "n": i, "payload": ""})
        assert drain(topology, address, 100, timeout=60).stats["count"].records_in == 100
        outputs = read_stream(address, topology, "counts", 100)
        assert sorted(e["count"] for e in outputs if e["key"] == "k0") == list(range(1, 35))


def test_a_tls_client_of_a_plaintext_listener_is_one_line_within_seconds(
        broker: str, as_env: pytest.MonkeyPatch) -> None:
    """A TLS hello to a plaintext port is read as a request's start and never answered: the
    clients waited their 10 s request timeout, then said "refused SSL: TimeoutError" (tansu);
    Apache Kafka closes the connection ("refused SSL: ConnectionResetError")."""
    env = doa_env(unset=("DOA_BROKER", *VARIABLES), DOA_SECURITY_PROTOCOL="SSL")
    done = doa_command("subscribe", "anything", "--broker", broker, "--limit", "1", env=env)
    lines = done.stderr.decode().strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, lines
    assert re.fullmatch(
        f"error: broker {re.escape(broker)} (did not answer a TLS handshake within 3 s|closed "
        r"the connection on a TLS handshake): is it a PLAINTEXT listener\? \(doa speaks SSL\)",
        lines[0]), lines
