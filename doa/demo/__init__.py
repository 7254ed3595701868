"""``doa demo``: a topology's demo source replayed live, the live view, the summary."""

from __future__ import annotations
