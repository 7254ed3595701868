"""Client security settings a user gets wrong locally are said as such, before any broker is
asked (the broker was blamed for a CA file that does not exist)."""

from __future__ import annotations

from pathlib import Path

import pytest

from doa.cluster.security import ClientSecurity, authentication_error, client_security
from doa.errors import DoaError


def test_a_missing_ca_file_is_named_not_blamed_on_the_broker(tmp_path: Path) -> None:
    missing = str(tmp_path / "ca.pem")
    with pytest.raises(DoaError) as caught:
        client_security({"DOA_SECURITY_PROTOCOL": "SSL", "DOA_SSL_CAFILE": missing})
    assert str(caught.value) == f"DOA_SSL_CAFILE (or ssl.ca.location): no file {missing}"
    with pytest.raises(DoaError, match="DOA_SSL_KEYFILE"):
        client_security({"DOA_SECURITY_PROTOCOL": "SASL_SSL", "DOA_SASL_MECHANISM": "PLAIN",
                         "DOA_SASL_USERNAME": "u", "DOA_SASL_PASSWORD": "p",
                         "DOA_SSL_KEYFILE": missing})
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    assert client_security({"DOA_SECURITY_PROTOCOL": "SSL", "DOA_SSL_CAFILE": missing}).cafile \
        == missing
    # no TLS: the file is not read, so not asked for
    assert client_security({"DOA_SSL_CAFILE": str(tmp_path / "nope.pem")}).protocol == \
        "PLAINTEXT"


def test_a_refusal_does_not_carry_the_clients_repr() -> None:
    from aiokafka.errors import UnsupportedSaslMechanismError

    error = UnsupportedSaslMechanismError("<AIOKafkaConnection host=127.0.0.1 port=19492>")
    line = authentication_error("127.0.0.1:19492", ClientSecurity(
        protocol="SASL_PLAINTEXT", mechanism="SCRAM-SHA-256", username="u", password="p"), error)
    assert "AIOKafkaConnection" not in line, line
    assert line.startswith("broker 127.0.0.1:19492 refused SASL_PLAINTEXT"), line
    assert line.endswith("UnsupportedSaslMechanismError"), line
