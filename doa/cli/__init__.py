"""The ``doa`` command line (``doa.cli.app:main``)."""

from __future__ import annotations
