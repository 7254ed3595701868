"""Model versions as data, in the in-memory harness: chunk reassembly, switching at the
version record's place in the merged log under any batch size, rollback, signing.

The reference is a plain loop over the records in timestamp order: a record is scored by the
version live at its timestamp (a version record wins ties: it is read first).
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doa import Topology
from doa.cluster.signing import SEAL
from doa.model import versions
from doa.model.artifacts import ArtifactError, add_chunk, chunk_records
from doa.testing import Harness

SCHEMAS = Path(__file__).parent / "schemas"
FEATURES = ["age_of_domain", "https"]
N = 300
KEY = b"0123456789abcdef-test"


class Scaled:
    """A model whose prediction says which version made it: age_of_domain * k."""

    def __init__(self, k: float) -> None:
        self.k = k

    def predict_batch(self, X: np.ndarray) -> np.ndarray:
        return X[:, 0] * self.k


def rows(n: int = N) -> list[dict[str, Any]]:
    rng = random.Random(7)
    return [{"id": i, "empty_server_form_handler": 0.0, "popup_window": 0.0,
             "https": float(rng.random() < 0.5), "request_from_other_domain": 0.0,
             "anchor_from_other_domain": 0.0, "is_popular": 0.0, "long_url": 0.0,
             "age_of_domain": float(rng.randint(1, 100)), "ip_in_url": 0.0} for i in range(n)]


def topology(partitions: int = 2, **options: Any) -> Topology:
    t = Topology("versions", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish", partitions=partitions)
    t.stream("scores", schema="doa.Prediction")
    t.stream("events", schema="doa.ModelEvent")
    t.model("m", reads="pages", writes="scores", model=Scaled(1.0), features=FEATURES,
            join="id", models="events", **options)
    return t


def publish(h: Harness, version: int, model: Any, at: int, *, chunk_bytes: int = 64,
            key: bytes | None = None, candidate: bool = False) -> None:
    records = chunk_records("m", version, pickle.dumps(model), fmt="sklearn",
                            chunk_bytes=chunk_bytes, publisher="test@here", published=0,
                            key=key, candidate=candidate)
    for p in range(h.topology.streams["m.versions"].partitions):
        h.publish("m.versions", records, partition=p, timestamps=[at] * len(records))


def command(h: Harness, action: str, version: int, at: int) -> None:
    for p in range(h.topology.streams["m.versions"].partitions):
        h.publish("m.versions", [versions.command("m", action, version)], partition=p,
                  timestamps=[at])


def scores(h: Harness, stream: str = "scores") -> dict[int, Any]:
    out: dict[int, Any] = {}
    for r in h.records(stream):
        assert int(r["join"]) not in out, "scored twice"
        out[int(r["join"])] = r
    return out


@given(size=st.integers(1, 3000), chunk=st.integers(1, 700), seed=st.integers(0, 10**6),
       signed=st.booleans())
@settings(max_examples=60, deadline=None)
def test_chunks_reassemble_in_any_order_with_repeats(size: int, chunk: int, seed: int,
                                                     signed: bool) -> None:
    rng = random.Random(seed)
    data = rng.randbytes(size)
    key = KEY if signed else None
    records = chunk_records("m", 3, data, fmt="sklearn", chunk_bytes=chunk, publisher="",
                            published=0, key=key)
    sealed = len(data) + (len(SEAL) + 32 if signed else 0)
    assert len(records) == -(-sealed // chunk) and all(len(r["data"]) <= chunk for r in records)
    order = records + rng.sample(records, k=min(3, len(records)))  # repeats (retries)
    rng.shuffle(order)
    parts: dict[int, dict[str, Any]] = {}
    seen: set[int] = set()
    for r in order:
        whole = add_chunk(parts, r, node="m", key=key)
        seen.add(r["chunk"])
        if len(seen) == len(records) and whole is not None:
            assert whole["data"] == data and parts == {}
            break
        assert whole is None
    else:
        pytest.fail("never whole")


def test_a_tampered_or_unsigned_artifact_is_refused() -> None:
    records = chunk_records("m", 2, b"a" * 100, fmt="sklearn", chunk_bytes=40, publisher="",
                            published=0, key=KEY)
    bad = [dict(r) for r in records]
    bad[-1]["data"] = b"b" * len(bad[-1]["data"])
    parts: dict[int, Any] = {}
    assert [add_chunk(parts, r, node="m", key=KEY) for r in bad[:-1]] == [None] * 3
    with pytest.raises(ArtifactError, match="mis-signed"):
        add_chunk(parts, bad[-1], node="m", key=KEY)
    unsigned = chunk_records("m", 2, b"a" * 100, fmt="sklearn", chunk_bytes=400,
                             publisher="", published=0, key=None)
    with pytest.raises(ArtifactError, match="unsigned"):
        add_chunk({}, unsigned[0], node="m", key=KEY)
    plain = [dict(r) for r in unsigned]
    plain[0]["data"] = b"c" * 100  # the hash catches it without a key
    with pytest.raises(ArtifactError, match="sha256"):
        add_chunk({}, plain[0], node="m", key=None)


@pytest.mark.parametrize("batch_size", [1, 7, 64, 1000])
def test_outputs_switch_at_the_version_record_under_any_batch_size(batch_size: int) -> None:
    h = Harness(topology(), batch_size=batch_size)
    data = rows()
    h.publish("pages", data, timestamps=range(N))
    publish(h, 2, Scaled(2.0), at=100)
    command(h, "rollback", 1, at=200)
    publish(h, 3, Scaled(3.0), at=250, chunk_bytes=17)
    h.run()
    out = scores(h)
    assert sorted(out) == list(range(N)), "skipped or scored twice"
    for i, r in out.items():
        version = 1 if i < 100 or 200 <= i < 250 else (2 if i < 200 else 3)
        k = {1: 1.0, 2: 2.0, 3: 3.0}[version]
        assert (r["model_version"], r["prediction"]) == (version, data[i]["age_of_domain"] * k)
    for p in (0, 1):  # each input partition's node instance switched, and said so
        events = [(e["action"], e["version"], e["from_version"]) for e in h.records("events")
                  if e["partition"] == p]
        assert events == [("created", 2, 1), ("rollback", 1, 2), ("created", 3, 1)]
    for p, state in h.state("m").items():
        assert state["version"] == 3 and state["parts"] == {} and p in (0, 1)
    assert h.dead_letters == []


def test_a_rollback_to_a_version_not_kept_is_a_dead_letter_and_changes_nothing() -> None:
    h = Harness(topology(partitions=1, keep=1))
    h.publish("pages", rows(10), timestamps=range(10))
    publish(h, 2, Scaled(2.0), at=1)
    publish(h, 3, Scaled(3.0), at=2)
    command(h, "rollback", 2, at=3)  # its bytes are gone: keep=1
    command(h, "rollback", 1, at=5)  # the topology's model is always there
    h.run()
    assert [(r["model_version"]) for r in h.records("scores")] == [1, 2, 3, 3, 3, 1, 1, 1, 1, 1]
    [dead] = h.dead_letters
    assert dead["stream"] == "m.versions" and "cannot roll back to version 2" in dead["message"]


def test_with_a_signing_key_an_unsigned_version_is_a_dead_letter(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOA_SIGNING_KEY", KEY.decode())
    h = Harness(topology(partitions=1))
    h.publish("pages", rows(20), timestamps=range(20))
    publish(h, 2, Scaled(2.0), at=5, chunk_bytes=10_000)  # unsigned: refused
    publish(h, 3, Scaled(3.0), at=10, chunk_bytes=50, key=KEY)
    h.run()
    assert [r["model_version"] for r in h.records("scores")] == [1] * 10 + [3] * 10
    [dead] = h.dead_letters
    assert "version 2" in dead["message"] and "unsigned" in dead["message"]


def test_a_repeated_publication_is_applied_once_and_a_conflicting_one_refused() -> None:
    h = Harness(topology(partitions=1))
    h.publish("pages", rows(6), timestamps=range(6))
    publish(h, 2, Scaled(2.0), at=1)
    publish(h, 2, Scaled(2.0), at=2)  # a retry of the same bytes
    publish(h, 2, Scaled(5.0), at=3, chunk_bytes=10_000)  # other bytes, same number
    h.run()
    assert [r["model_version"] for r in h.records("scores")] == [1, 2, 2, 2, 2, 2]
    assert [e["action"] for e in h.records("events")] == ["created"]  # one partition
    [dead] = h.dead_letters
    assert "published already" in dead["message"]
