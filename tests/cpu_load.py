"""Busy processes beside the tests: results must not depend on how loaded the machine is.

``python -m pytest --cpu-load 2`` (or ``DOA_TEST_CPU_LOAD=2``) runs two CPU-burning processes
for the whole session; a test that needs load whatever the option says uses
:class:`CpuLoad` itself. Each burner spins in pure Python and exits by itself when the
process that started it is gone (so a killed pytest leaves none behind).

Examples
--------
>>> with CpuLoad(1) as load:
...     len(load.pids)
1
"""

from __future__ import annotations

import os
import subprocess
import sys
from types import TracebackType

BURN = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:
    for _ in range(2_000_000):
        pass
"""


class CpuLoad:
    """``n`` processes that each keep one core busy while the context is open."""

    def __init__(self, n: int = 2) -> None:
        self.n = n
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def __enter__(self) -> CpuLoad:
        self.procs = [subprocess.Popen([sys.executable, "-c", BURN, str(os.getpid())],
                                       stdin=subprocess.DEVNULL) for _ in range(self.n)]
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for p in self.procs:
            p.kill()
        for p in self.procs:
            p.wait()
        self.procs = []
