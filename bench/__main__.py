"""``python -m bench COMMAND``: the benchmarks that are commands (today: ``peers``)."""

from __future__ import annotations

import sys


def main(argv: list[str]) -> None:
    commands = {"peers": "bench.peers"}
    if not argv or argv[0] not in commands:
        sys.exit(f"usage: python -m bench {{{','.join(commands)}}} [options] "
                 "(python -m bench peers --help)")
    import importlib

    importlib.import_module(commands[argv[0]]).main(argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
