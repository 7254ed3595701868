"""How a local Apache Kafka (doa.local.apache_kafka) authenticates and encrypts its clients.

A secured local cluster has SASL users (SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN), a TLS
keystore (one PEM file: private key and certificate chain), or both; its client port then
speaks SASL_PLAINTEXT, SSL or SASL_SSL, and its brokers talk PLAINTEXT among themselves on
internal loopback ports. For tests of doa's client security (``doa.cluster.security``), not for
production.

Examples
--------
>>> auth = Auth(users={"alice": "secret"})
>>> auth.protocol, auth.secured
('SASL_PLAINTEXT', True)
>>> auth.listeners(9092, 9093, 9094)["listeners"]
'SASL_PLAINTEXT://127.0.0.1:9092,PLAINTEXT://127.0.0.1:9093,CONTROLLER://127.0.0.1:9094'
>>> Auth().protocol
'PLAINTEXT'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SASL_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN")
SCRAM_MECHANISMS = SASL_MECHANISMS[:2]


@dataclass(frozen=True)
class Auth:
    """SASL users (name to password) and/or a PEM keystore for the client listener."""

    users: Mapping[str, str] | None = None
    keystore: Path | None = None
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def protocol(self) -> str:
        if self.users is not None:
            return "SASL_SSL" if self.keystore else "SASL_PLAINTEXT"
        return "SSL" if self.keystore else "PLAINTEXT"

    @property
    def secured(self) -> bool:
        return self.protocol != "PLAINTEXT"

    def scram_arguments(self) -> list[str]:
        """StorageTool ``format`` arguments storing every user's SCRAM credentials."""
        out: list[str] = []
        for user, password in (self.users or {}).items():
            for mechanism in SCRAM_MECHANISMS:
                out += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        return out

    def listeners(self, port: int, internal_port: int, controller_port: int
                  ) -> dict[str, object]:
        """server.properties entries: the secured client listener and the internal one."""
        name = self.protocol
        config: dict[str, object] = {
            "listeners": f"{name}://127.0.0.1:{port},PLAINTEXT://127.0.0.1:{internal_port},"
                         f"CONTROLLER://127.0.0.1:{controller_port}",
            "advertised.listeners": f"{name}://127.0.0.1:{port},"
                                    f"PLAINTEXT://127.0.0.1:{internal_port}",
            "listener.security.protocol.map":
                f"PLAINTEXT:PLAINTEXT,{name}:{name},CONTROLLER:PLAINTEXT",
        }
        prefix = f"listener.name.{name.lower()}"
        if self.users is not None:
            plain_users = " ".join(f'user_{u}="{p}"' for u, p in self.users.items())
            config["sasl.enabled.mechanisms"] = ",".join(SASL_MECHANISMS)
            for mechanism in SCRAM_MECHANISMS:
                config[f"{prefix}.{mechanism.lower()}.sasl.jaas.config"] = (
                    "org.apache.kafka.common.security.scram.ScramLoginModule required;")
            config[f"{prefix}.plain.sasl.jaas.config"] = (
                f"org.apache.kafka.common.security.plain.PlainLoginModule required "
                f"{plain_users};")
        if self.keystore is not None:
            config[f"{prefix}.ssl.keystore.type"] = "PEM"
            config[f"{prefix}.ssl.keystore.location"] = str(self.keystore)
        config.update(self.extra)
        return config
