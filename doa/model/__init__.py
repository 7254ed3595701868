"""Batch-trained model nodes: a pre-trained model scores micro-batches (see :mod:`.node`);
its versions are data (:mod:`.versions`, :mod:`.artifacts`); delayed labels and challengers
(:mod:`.labels`: :class:`Labels`, :class:`Promote`)."""

from __future__ import annotations

from doa.model.labels import Labels, Promote

__all__ = ["Labels", "Promote"]
