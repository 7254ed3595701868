"""Collect what the log holds: any stream exported to a file, a learner's training set.

Both read a bounded range of a stream (:mod:`doa.collect.read`: from ``--from`` to the end
offsets when the command starts, or ``--to``), decode it with the stream's registered schema
versions, and write JSON lines, CSV or Parquet (:mod:`doa.collect.sinks`, Avro types mapped to
Arrow by :mod:`doa.collect.arrow`):

- :func:`doa.collect.export.export`: one stream, record by record (``doa export``);
- :func:`doa.collect.dataset.collect`: a learner's training set, its outcomes joined to its
  predictions (``doa dataset``; :func:`doa.dataset.read` in Python).

pyarrow is needed only for Parquet and for :func:`doa.dataset.read` (``pip install
'doa[data]'``).
"""

from __future__ import annotations
