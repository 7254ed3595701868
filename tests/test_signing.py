"""Signed state (doa.cluster.signing): snapshots and model versions are checked before unpickling.

``Plant`` stands for any code an attacker could put in a pickle: unpickling it creates a file.
Each refusal test also checks that the file was not created, and a control shows that the
same bytes do create it when they are unpickled.
"""

from __future__ import annotations

import logging
import pathlib
import pickle
import struct
from typing import Any

import pytest

from doa.cluster import signing as signing
from doa.errors import DoaError
from doa.runtime.snapshot import MAGIC, latest_snapshot, scan, snapshot_records

KEY = b"k" * 32
TOPIC = "counting.count.state"


class Plant:
    """Unpickling this creates ``path``."""

    def __init__(self, path: pathlib.Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (pathlib.Path.touch, (self.path,))


def values(partition: int, seq: int, state: Any, key: bytes | None,
           chunk_size: int = 1 << 20) -> list[bytes]:
    return [v for _k, v in snapshot_records(partition, seq, state, {"events": seq * 10},
                                            chunk_size, key=key, topic=TOPIC)]


def test_the_plant_runs_when_unpickled(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "owned"
    pickle.loads(pickle.dumps(Plant(marker)))
    assert marker.exists()  # so the refusals below are refusals of a real attack


def test_a_signed_snapshot_of_several_chunks_round_trips() -> None:
    state = {"keys": {f"k{i}": (i, i * i) for i in range(200)}}
    chunks = values(3, 8, state, KEY, chunk_size=256)
    assert len(chunks) > 5 and all(v[4] == 2 for v in chunks)  # format 2: signed
    snap, refused = scan(chunks, KEY, topic=TOPIC, partition=3)
    assert refused == [] and snap is not None
    assert (snap.seq, snap.state, snap.offsets) == (8, state, {"events": 80})


def test_a_mis_signed_snapshot_is_refused_unread(tmp_path: pathlib.Path) -> None:
    marker = tmp_path / "owned"
    forged = values(0, 2, Plant(marker), b"another key of 16 bytes or more")
    snap, refused = scan(forged, KEY, topic=TOPIC, partition=0, offsets=[41])
    assert snap is None and not marker.exists()
    assert [(r.reason, r.last, r.seq) for r in refused] == [("mis-signed", 41, 2)]
    assert refused[0].message().startswith(f"state topic {TOPIC!r} partition 0 offset 41: ")
    latest_snapshot(forged)  # control: without a key nothing is checked, the plant runs
    assert marker.exists()


def test_an_unsigned_snapshot_is_refused_and_the_previous_signed_one_restored(
        tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    marker = tmp_path / "owned"
    tail = values(1, 1, {"n": 1}, KEY) + values(1, 2, Plant(marker), None, chunk_size=16)
    offsets = list(range(100, 100 + len(tail)))
    with caplog.at_level(logging.ERROR, logger="doa.runtime.snapshot"):
        snap = latest_snapshot(tail, KEY, topic=TOPIC, partition=1, offsets=offsets)
    assert snap is not None and (snap.seq, snap.state, snap.at) == (1, {"n": 1}, 100)
    assert not marker.exists()
    [line] = [r.getMessage() for r in caplog.records]
    assert line == (f"state topic {TOPIC!r} partition 1 offsets 101-{offsets[-1]}: snapshot 2 "
                    "is unsigned (it carries no signature and DOA_SIGNING_KEY is set); "
                    "refused, not unpickled; restoring from snapshot 1 (offset 100) instead")


def test_a_signed_snapshot_is_bound_to_its_topic_partition_and_sequence() -> None:
    good = values(0, 5, {"n": 5}, KEY)
    assert scan(good, KEY, topic=TOPIC, partition=0)[0] is not None
    assert scan(good, KEY, topic=TOPIC, partition=1)[1][0].reason == "mis-signed"
    assert scan(good, KEY, topic="other.node.state", partition=0)[1][0].reason == "mis-signed"
    renumbered = [v[:5] + struct.pack("<Q", 6) + v[13:] for v in good]
    assert scan(renumbered, KEY, topic=TOPIC, partition=0)[0] is None
    flipped = [good[0][:-1] + bytes([good[0][-1] ^ 1])]
    assert scan(flipped, KEY, topic=TOPIC, partition=0)[1][0].reason == "mis-signed"


def test_snapshots_written_before_signing_still_load_without_a_key() -> None:
    payload = pickle.dumps({"state": {"n": 7}, "offsets": {"events": 3}, "created_ms": 1})
    old = struct.pack("<4sBQII", MAGIC, 1, 4, 0, 1) + payload  # the format-1 record, by hand
    snap = latest_snapshot([old])
    assert snap is not None and (snap.seq, snap.state, snap.offsets) == (4, {"n": 7},
                                                                          {"events": 3})
    assert values(0, 4, {"n": 7}, None)[0][4] == 1  # without a key doa still writes format 1
    assert latest_snapshot(values(0, 4, {"n": 7}, KEY)).state == {"n": 7}  # type: ignore


def test_the_key_comes_from_the_environment_or_the_client_config_file(
        tmp_path: pathlib.Path) -> None:
    config = tmp_path / "client.properties"
    config.write_text("security.protocol=PLAINTEXT\ndoa.signing.key = from-the-file-0123\n")
    assert signing.signing_key({"DOA_KAFKA_CONFIG": str(config)}) == b"from-the-file-0123"
    assert signing.signing_key({"DOA_KAFKA_CONFIG": str(config),
                                "DOA_SIGNING_KEY": "from-the-environment"}) \
        == b"from-the-environment"
    assert signing.signing_key({}) is None
    with pytest.raises(DoaError, match="has 3 bytes; use at least 16"):
        signing.signing_key({"DOA_SIGNING_KEY": "abc"})


def test_without_a_key_nodes_warn_once_per_process(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from doa.engines.partitioned import PartitionedNode
    from doa.topology.loader import load_topology

    monkeypatch.delenv("DOA_SIGNING_KEY", raising=False)
    monkeypatch.delenv("DOA_KAFKA_CONFIG", raising=False)
    monkeypatch.setattr(signing, "_WARNED", set())
    topology = load_topology(str(pathlib.Path(__file__).parent / "topologies" / "counting.py"))
    with caplog.at_level(logging.WARNING, logger="doa.cluster.signing"):
        for _ in range(3):
            assert PartitionedNode(topology, topology.nodes["count"], "localhost:1") \
                .signing_key is None
    assert [r.getMessage() for r in caplog.records] == [signing.UNSIGNED_WARNING]
    assert "writable only by this topology's own principal" in signing.UNSIGNED_WARNING

    caplog.clear()
    monkeypatch.setattr(signing, "_WARNED", set())
    monkeypatch.setenv("DOA_SIGNING_KEY", KEY.decode())
    node = PartitionedNode(topology, topology.nodes["count"], "localhost:1")
    assert node.signing_key == KEY and caplog.records == []
