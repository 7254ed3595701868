"""Versions registered after a codec was made: one read of the registry
(:func:`doa.cluster.registry.registered_history`) serves a node (:func:`reread`) and a reader
(:class:`doa.cluster.codecs.RegisteredCodec`); readers without a topology resolve several
streams with one read of the registry and one of the broker's topics
(:func:`doa.cluster.codecs.resolve_codecs`). The broker is replaced by counting fakes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from doa.cluster import codecs, registry, streams
from doa.cluster.codecs import RegisteredCodec, resolve_codecs
from doa.cluster.registry import Registered, is_registered, registered_history, reread
from doa.errors import DecodeError, DoaError
from doa.topology.topology import Topology
from doa.wire.codec import Codec
from doa.wire.schema import Schema

V1 = [{"name": "id", "type": "string"}]
V2 = [*V1, {"name": "n", "type": "long", "default": 0}]
V3 = [*V2, {"name": "color", "type": "string", "default": "none"}]


def schema(fields: list[dict[str, object]]) -> Schema:
    return Schema.from_json({"type": "record", "name": "T", "namespace": "h", "fields": fields})


def topology(tmp_path: Path, fields: list[dict[str, object]]) -> Topology:
    (tmp_path / "t.avsc").write_text(json.dumps(schema(fields).json))
    t = Topology("h", schemas=tmp_path)
    t.stream("s", schema="h.T")
    return t


class FakeRegistry:
    """``read_registry`` on a broker holding ``versions`` of stream ``s``: counts its calls."""

    def __init__(self, *fields: list[dict[str, object]], fail: bool = False) -> None:
        self.versions = {"s": [Registered("s", i + 1, schema(f)) for i, f in enumerate(fields)]}
        self.fail = fail
        self.calls = 0

    def __call__(self, address: str, timeout_s: float = 10.0) -> dict[str, list[Registered]]:
        self.calls += 1
        if self.fail:
            raise OSError("connection refused")
        return self.versions


def test_history_is_what_the_codec_does_not_know(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRegistry(V1, V2, V3)
    monkeypatch.setattr(registry, "read_registry", fake)
    new = registered_history("b:9092", "s", {schema(V2).fingerprint})
    assert [v.version for v in new] == [1, 3]
    assert registered_history("b:9092", "other", set()) == []
    assert fake.calls == 2
    assert is_registered(schema(V2), fake.versions["s"])
    assert not is_registered(schema(V2), fake.versions["s"][::2])


def test_reread_adds_the_new_versions_to_the_topology(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    t = topology(tmp_path, V2)
    monkeypatch.setattr(registry, "read_registry", FakeRegistry(V1, V2, V3))
    codec = reread("b:9092", t, "s")
    assert codec is t.codec("s")
    assert set(codec.history) == {schema(V1).fingerprint, schema(V3).fingerprint}
    assert codec.decode(Codec("s", schema(V3)).encode({"id": "a", "n": 2, "color": "red"})
                        ) == {"id": "a", "n": 2}


def test_reread_is_none_when_the_registry_cannot_be_read(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    t = topology(tmp_path, V2)
    monkeypatch.setattr(registry, "read_registry", FakeRegistry(V1, fail=True))
    assert reread("b:9092", t, "s") is None
    assert t.codec("s").history == {}


def test_a_reader_reads_the_registry_once(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRegistry(V1, V2)
    monkeypatch.setattr(registry, "read_registry", fake)
    codec = RegisteredCodec(topology(tmp_path, V2).codec("s"), "b:9092")
    old = Codec("s", schema(V1)).encode({"id": "a"})
    assert codec.decode(old) == {"id": "a", "n": 0}
    assert codec.decode(old) == {"id": "a", "n": 0}
    assert fake.calls == 1
    newer = Codec("s", schema(V3)).encode({"id": "b", "n": 1, "color": "red"})
    with pytest.raises(DecodeError) as caught:  # v3 registered later: not read again
        codec.decode(newer)
    assert caught.value.reason == "unknown-fingerprint"
    assert fake.calls == 1


def test_streams_without_a_topology_read_the_broker_once(monkeypatch: pytest.MonkeyPatch
                                                         ) -> None:
    fake = FakeRegistry(V1, V2)
    fake.versions["t"] = [Registered("t", 1, schema(V3), key="id")]
    metadata: list[str] = []

    def topics(broker: str) -> dict[str, int]:
        metadata.append(broker)
        return {"s": 3, "empty": 2}

    monkeypatch.setattr(registry, "read_registry", fake)
    monkeypatch.setattr(streams, "broker_topics", topics)
    resolved = resolve_codecs(["s", "t"], None, "b:9092")
    assert (fake.calls, metadata) == (1, ["b:9092"])
    assert resolved["s"][0].schema == schema(V2)
    assert list(resolved["s"][0].history) == [schema(V1).fingerprint]
    assert (resolved["s"][1].partitions, resolved["t"][1].partitions) == (3, 1)  # t: no topic
    assert resolved["t"][1].key == "id"
    missing = "stream 'sx' does not exist on b:9092 (streams: s, empty)"
    with pytest.raises(DoaError, match=f"^{re.escape(missing)}$"):
        codecs.resolve_codec("sx", None, "b:9092")
    with pytest.raises(DoaError, match="stream 'empty' has no registered schema on b:9092"):
        codecs.resolve_codec("empty", None, "b:9092")


def test_streams_of_a_topology_read_nothing(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeRegistry(V1)
    monkeypatch.setattr(registry, "read_registry", fake)
    t = topology(tmp_path, V2)
    resolved = resolve_codecs(["s"], t, "b:9092")
    assert isinstance(resolved["s"][0], RegisteredCodec)
    assert resolved["s"][1] is t.streams["s"]
    assert fake.calls == 0
    undeclared = "topology 'h' declares no stream 'x' (streams: h.dlq, s)"
    with pytest.raises(DoaError, match=f"^{re.escape(undeclared)}$"):
        resolve_codecs(["x"], t, "b:9092")
