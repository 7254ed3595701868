"""Kafka keys and partitions as Kafka's default partitioner computes them (murmur2).

Examples
--------
>>> partition_for(key_bytes("card-7"), 4) == partition_for(b"card-7", 4)
True
>>> partition_for(None, 4, fallback=6)
2
"""

from __future__ import annotations


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash as an unsigned 32-bit int (the default partitioner's hash).

    Examples
    --------
    >>> murmur2(b"21")
    3321034988
    """
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (data[i4] & 0xFF) + ((data[i4 + 1] & 0xFF) << 8) + ((data[i4 + 2] & 0xFF) << 16) \
            + ((data[i4 + 3] & 0xFF) << 24)
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    idx = length & ~3
    if extra >= 3:
        h ^= (data[idx + 2] & 0xFF) << 16
    if extra >= 2:
        h ^= (data[idx + 1] & 0xFF) << 8
    if extra >= 1:
        h ^= data[idx] & 0xFF
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_for(key: bytes | None, partitions: int, fallback: int = 0) -> int:
    """The partition of ``key`` as Kafka's default partitioner picks it.

    Records without a key stay on ``fallback`` modulo ``partitions`` (the runtime passes the
    input partition, so unkeyed outputs keep their input's partitioning, deterministically).
    """
    if key is None:
        return fallback % partitions
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def key_bytes(value: object) -> bytes | None:
    """The Kafka key for a key field's value: UTF-8 text of it, None for None."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    return str(value).encode()
