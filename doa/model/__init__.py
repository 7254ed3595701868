"""Batch-trained model nodes: a pre-trained model scores micro-batches (see :mod:`.node`)."""

from __future__ import annotations
