"""Lineage of any record, read from the log alone: ``doa lineage`` and its Python API.

:func:`doa.lineage.find.find` locates a record (by coordinates, or by id),
:func:`doa.lineage.walk.trace` walks its ancestry and descendants, and
:mod:`doa.lineage.render` (tree, JSON) and :mod:`doa.lineage.prov` (W3C PROV-JSON) show them.
"""

from __future__ import annotations
