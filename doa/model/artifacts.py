"""Model versions as data: an artifact cut into records under Kafka's record limit, and put
back together by the node that reads them.

``doa model publish`` seals the artifact's bytes (an HMAC tag in front when a signing key is
set, see :mod:`doa.cluster.signing`; the tag covers the node, the version and the SHA-256),
cuts the sealed bytes into ``doa.ModelArtifact`` records of at most ``chunk_bytes`` each
(:func:`chunk_records`) and sends every chunk to every partition of the node's versions
stream. The node keeps the chunks it has of a version in its state (:func:`add_chunk`), in
any order, a repeated chunk counting once; with the last one it checks the seal and the hash
and returns the artifact. A model is loaded from those bytes (:func:`load_bytes`) only after
both checks pass.

Examples
--------
>>> records = chunk_records("payout", 2, b"x" * 10, fmt="sklearn", chunk_bytes=4,
...                         publisher="ann@host", published=0, key=None)
>>> [(r["chunk"], r["chunks"], r["data"]) for r in records]
[(0, 3, b'xxxx'), (1, 3, b'xxxx'), (2, 3, b'xx')]
>>> parts: dict = {}
>>> [add_chunk(parts, r, node="payout", key=None) for r in reversed(records)][-1]["data"]
b'xxxxxxxxxx'
>>> parts  # nothing left once a version is whole
{}
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from typing import Any

from doa.cluster.signing import SignatureError, seal, unseal
from doa.model.formats import ModelLoadError, Scorer, load, misnamed

__all__ = ["CHUNK_BYTES", "ArtifactError", "add_chunk", "chunk_records", "load_bytes",
           "sha256"]

CHUNK_BYTES = 512 * 1024  # under Kafka's default 1 MB record limit, with room for the rest
_CONTEXT = "model-artifact"


class ArtifactError(ValueError):
    """A version's chunks do not make the artifact they announce (hash, seal, conflict)."""


def sha256(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def chunk_records(node: str, version: int, data: bytes, *, fmt: str, chunk_bytes: int,
                  publisher: str, published: int, key: bytes | None, note: str = "",
                  candidate: bool = False,
                  metadata: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """The ``doa.ModelArtifact`` records of version ``version`` of ``node``'s model."""
    if chunk_bytes < 1:
        raise ValueError(f"chunk_bytes must be >= 1, got {chunk_bytes}")
    digest = sha256(data)
    sealed = seal(key, data, _CONTEXT, node, version, digest)
    pieces = [sealed[i:i + chunk_bytes] for i in range(0, len(sealed), chunk_bytes)] or [b""]
    return [{"model": node, "action": "publish", "version": version, "candidate": candidate,
             "sha256": digest, "format": fmt, "metadata": dict(metadata or {}), "note": note,
             "publisher": publisher, "published": published, "chunk": i,
             "chunks": len(pieces), "size": len(sealed), "data": piece, "reason": ""}
            for i, piece in enumerate(pieces)]


def add_chunk(parts: dict[int, dict[str, Any]], record: Mapping[str, Any], *, node: str,
              key: bytes | None) -> dict[str, Any] | None:
    """Keep one chunk in ``parts`` (part of the node's state); the whole version when this
    chunk completes it: its record's fields with ``data`` the checked, unsealed artifact.

    Raises :class:`ArtifactError` when the chunks disagree with one another or with the
    announced hash, and when the seal does not verify under ``key`` (nothing is unpickled).
    """
    version = int(record["version"])
    chunks = int(record["chunks"])
    index = int(record["chunk"])
    where = f"model node {node!r}: version {version}"
    if not 0 <= index < chunks:
        raise ArtifactError(f"{where}: chunk {index} of {chunks} is out of range")
    got = parts.get(version)
    if got is None:
        got = parts[version] = {"sha256": record["sha256"], "chunks": chunks, "data": {}}
    elif got["sha256"] != record["sha256"] or got["chunks"] != chunks:
        raise ArtifactError(f"{where}: chunk {index} announces sha256 {record['sha256'][:12]} "
                            f"in {chunks} chunks, earlier chunks {got['sha256'][:12]} in "
                            f"{got['chunks']}: two different artifacts under one version")
    got["data"].setdefault(index, bytes(record["data"]))
    if len(got["data"]) < chunks:
        return None
    del parts[version]
    sealed = b"".join(got["data"][i] for i in range(chunks))
    try:
        data = unseal(key, sealed, _CONTEXT, node, version, record["sha256"])
    except SignatureError as exc:
        raise ArtifactError(f"{where} (sha256 {record['sha256'][:12]}) is {exc}; refused, "
                            "not unpickled") from None
    if sha256(data) != record["sha256"]:
        raise ArtifactError(f"{where}: the artifact's sha256 is {sha256(data)[:12]}, its "
                            f"chunks announce {record['sha256'][:12]} (altered or incomplete)")
    return {**record, "data": data}


def load_bytes(data: bytes, fmt: str, *, node: str, version: int, features: Sequence[str],
               classes: Sequence[Any] | None = None, source: str | None = None) -> Scorer:
    """The scorer of an artifact's bytes: an ONNX model, else a pickle or joblib file;
    ``source`` (the file published) is named in errors.

    Raises :class:`~doa.model.formats.ModelLoadError` when the bytes do not load (saying
    so when they look like the other format than ``fmt``: :func:`~doa.model.formats.misnamed`),
    or when the model expects another number of input features than ``features`` has or
    names them in another order (:mod:`doa.model.inputs`).

    >>> import pickle
    >>> import numpy as np
    >>> from sklearn.dummy import DummyRegressor
    >>> model = DummyRegressor(strategy="constant", constant=7.0).fit([[0.0]], [0.0])
    >>> scorer = load_bytes(pickle.dumps(model), "sklearn", node="n", version=2, features=["x"])
    >>> scorer.format, scorer.score(np.array([[1.0], [2.0]])).predictions
    ('sklearn', [7.0, 7.0])
    >>> load_bytes(b"junk", "sklearn", node="n", version=2, features=["x"], source="m.pkl")
    Traceback (most recent call last):
    ...
    doa.model.formats.ModelLoadError: model node 'n': cannot load version 2 from m.pkl (sklearn, \
4 bytes): ...
    >>> load_bytes(pickle.dumps(model), "sklearn", node="n", version=2, features=["x", "y"])
    Traceback (most recent call last):
    ...
    doa.model.formats.ModelLoadError: model node 'n': version 2 (DummyRegressor) expects 1 \
input features, the node declares 2 (x, y)
    """
    what = f"version {version}" + ("" if source is None else f" from {source}")
    try:
        if fmt == "onnx":
            import onnxruntime

            model: Any = onnxruntime.InferenceSession(data, providers=["CPUExecutionProvider"])
        else:
            import joblib

            model = joblib.load(io.BytesIO(data))
    except Exception as exc:
        cause = (misnamed(source, data[:2]) if source else None) or \
            f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
        raise ModelLoadError(f"model node {node!r}: cannot load {what} ({fmt}, {len(data)} "
                             f"bytes): {cause}") from None
    return load(model, node=node, features=features, classes=classes, what=what)
