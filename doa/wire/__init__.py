"""Avro on the wire: schemas, the codec with its strict generated reader, error
explanations, schema compatibility."""

from __future__ import annotations
