"""Online learners: the node, its grouped parameters and kind (spec), its batched model calls,
its output records, model versions."""

from __future__ import annotations
