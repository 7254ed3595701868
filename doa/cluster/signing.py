"""Signed state: an HMAC-SHA256 over every snapshot and model version doa writes, checked
before anything is unpickled.

Snapshots (``TOPOLOGY.NODE.state``) and model versions (the ``blob`` of a ``doa.ModelEvent``)
are pickles, and loading a pickle runs whatever code it names: whoever can write those topics
could otherwise run code in every node that restores from them. With a signing key, doa signs
what it writes and refuses what it did not sign: the tag is checked first, with
:func:`hmac.compare_digest`, and bytes that fail the check never reach :mod:`pickle`.

The key is ``DOA_SIGNING_KEY`` or, failing that, the property ``doa.signing.key`` of the Kafka
client config file named by ``DOA_KAFKA_CONFIG`` (see :mod:`doa.cluster.security`); every process of
a topology needs the same key, of at least 16 bytes. Without a key doa signs nothing, loads
what it finds (snapshots written before signing existed included) and warns once per process
that the state topics must be writable only by the topology's own principal.

A tag covers a context besides the bytes (for a snapshot: its state topic, partition and
sequence number), so a signed snapshot copied to another node or partition is refused too.

Examples
--------
>>> key = b"0123456789abcdef"
>>> tag = sign(key, b"pickle bytes", "snapshot", "counting.count.state", 0, 7)
>>> len(tag), verify(key, b"pickle bytes", tag, "snapshot", "counting.count.state", 0, 7)
(32, True)
>>> verify(key, b"pickle bytes", tag, "snapshot", "counting.count.state", 1, 7)  # moved
False
>>> verify(b"another key, 16+", b"pickle bytes", tag, "snapshot", "counting.count.state", 0, 7)
False
>>> sealed = seal(key, b"model bytes", "model", "m", 0, 2)
>>> unseal(key, sealed, "model", "m", 0, 2)
b'model bytes'
>>> unseal(None, sealed, "model", "m", 0, 2)  # no key: nothing to check against
b'model bytes'
>>> unseal(key, b"model bytes", "model", "m", 0, 2)
Traceback (most recent call last):
...
doa.cluster.signing.SignatureError: unsigned (no signature, and DOA_SIGNING_KEY is set)
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import struct
from collections.abc import Mapping

from doa.cluster.security import setting
from doa.errors import DoaError

log = logging.getLogger(__name__)

ENV_KEY = "DOA_SIGNING_KEY"
CONFIG_KEY = "doa.signing.key"
MIN_KEY_BYTES = 16
TAG_SIZE = 32
SEAL = b"DOA#\x01"  # sealed blob: this prefix (magic, format 1), the tag, then the bytes
UNSIGNED_WARNING = (f"no signing key ({ENV_KEY}, or {CONFIG_KEY} in DOA_KAFKA_CONFIG): "
                    "snapshots and model versions are unsigned pickles, restored as found; "
                    "the state topics (TOPOLOGY.NODE.state) and models streams must be "
                    "writable only by this topology's own principal")
_WARNED: set[str] = set()


class SignatureError(DoaError):
    """Bytes that a signing key does not vouch for; they were not unpickled."""


def signing_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """The signing key (None: none is set); a key under 16 bytes is an error.

    >>> signing_key({"DOA_SIGNING_KEY": "s3cret-s3cret-s3cret"})
    b's3cret-s3cret-s3cret'
    >>> signing_key({}) is None
    True
    >>> signing_key({"DOA_SIGNING_KEY": "short"})
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: DOA_SIGNING_KEY: the signing key has 5 bytes; use at least 16 ...
    """
    text = setting(ENV_KEY, CONFIG_KEY, env)
    if text is None:
        return None
    key = text.encode()
    if len(key) < MIN_KEY_BYTES:
        raise DoaError(f"{ENV_KEY}: the signing key has {len(key)} bytes; use at least "
                       f"{MIN_KEY_BYTES} (for example `openssl rand -hex 32`)")
    return key


def state_key(env: Mapping[str, str] | None = None) -> bytes | None:
    """:func:`signing_key`, for a node starting: without a key, warn (once per process)."""
    key = signing_key(env)
    if key is None and UNSIGNED_WARNING not in _WARNED:
        _WARNED.add(UNSIGNED_WARNING)
        log.warning(UNSIGNED_WARNING)
    return key


def own_broker() -> None:
    """This process runs on an embedded broker it started itself (in memory, on loopback,
    stopped with the process): nothing outlives the run to be restored, so
    :func:`state_key` does not warn about unsigned state (a shared broker still warns).

    >>> own_broker()
    >>> state_key({}) is None  # and no warning
    True
    """
    _WARNED.add(UNSIGNED_WARNING)


def _mac(key: bytes, data: bytes, context: tuple[object, ...]) -> bytes:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for part in context:  # length-prefixed: ("ab", "c") and ("a", "bc") differ
        text = str(part).encode()
        mac.update(struct.pack(">I", len(text)) + text)
    mac.update(data)
    return mac.digest()


def sign(key: bytes, data: bytes, *context: object) -> bytes:
    """The 32-byte HMAC-SHA256 tag of ``data`` in ``context`` (strings and numbers)."""
    return _mac(key, data, context)


def verify(key: bytes, data: bytes, tag: bytes, *context: object) -> bool:
    """True if ``tag`` is the tag of ``data`` in ``context`` under ``key`` (constant time)."""
    return hmac.compare_digest(_mac(key, data, context), tag)


def seal(key: bytes | None, data: bytes, *context: object) -> bytes:
    """``data`` with its tag in front (without a key: ``data`` unchanged, as before signing)."""
    return data if key is None else SEAL + sign(key, data, *context) + data


def unseal(key: bytes | None, blob: bytes, *context: object) -> bytes:
    """The bytes of a :func:`seal`-ed ``blob``, checked against ``key``.

    Raises :class:`SignatureError` if a key is set and ``blob`` is unsigned or its tag does
    not match. Without a key, the tag is not checked and an unsigned blob is returned as is.
    """
    signed = blob.startswith(SEAL) and len(blob) >= len(SEAL) + TAG_SIZE
    data = blob[len(SEAL) + TAG_SIZE:] if signed else blob
    if key is None:
        return data
    if not signed:
        raise SignatureError(f"unsigned (no signature, and {ENV_KEY} is set)")
    if not verify(key, data, blob[len(SEAL): len(SEAL) + TAG_SIZE], *context):
        raise SignatureError(f"mis-signed (not signed with this {ENV_KEY}, or altered)")
    return data
