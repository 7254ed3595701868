"""Online learners: the node, its grouped parameters and kind (spec), its batched model calls,
its output records, model versions, labels held for their prediction, a challenger."""

from __future__ import annotations
