"""One node, engine-free: decode, step, encode (runner); the timestamp merge of
several inputs; snapshots of state with the offsets they cover."""

from __future__ import annotations
