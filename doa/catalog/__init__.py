"""See what exists: running processes describe themselves, ``doa catalog`` reads it all back.

- :mod:`doa.catalog.describe`: the description and heartbeat records on ``_doa_topologies``;
- :mod:`doa.catalog.publish`: the thread of ``doa run`` that writes them;
- :mod:`doa.catalog.read`: what the catalog reads from a broker (offsets, samples, groups);
- :mod:`doa.catalog.collect`: :func:`collect`, the catalog as JSON-ready data (its shape is
  documented there);
- :mod:`doa.catalog.writers`: the refusal of a stream that nodes of two topologies write;
- :mod:`doa.catalog.forget`: ``doa catalog forget``, a topology that no longer runs forgotten;
- :mod:`doa.catalog.render` and :mod:`doa.catalog.html`: a terminal table and a
  self-contained HTML page of it.
"""

from __future__ import annotations

from doa.catalog.collect import collect

__all__ = ["collect"]
