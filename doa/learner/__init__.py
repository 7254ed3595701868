"""Online learners: the node, its batched model calls, its output records, model
versions."""

from __future__ import annotations
