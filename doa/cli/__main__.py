"""``python -m doa.cli``: the ``doa`` command."""

from __future__ import annotations

from doa.cli.app import main

if __name__ == "__main__":  # pragma: no cover
    main()
