"""Say dead letters as they happen: one log line for each of a node's first few, then one
line at most every ``EVERY_S`` seconds with how many more came.

A record that becomes a dead letter is kept (its bytes, where it was, why), but a running
``doa run`` showed only a count in its progress line; the user had to think of ``doa dlq``.
The lines go to the ``doa`` log, which the command line shows on stderr. Time here decides
only what is logged, never what a node does.

Examples
--------
>>> import logging
>>> now = [0.0]
>>> lines = LetterLines("score", first=1, every_s=10, clock=lambda: now[0])
>>> lines.tell("readings", 1, 5, "DecodeError", "stream 'readings': cannot decode")
>>> lines.tell("readings", 1, 6, "DecodeError", "again")  # quiet: within 10 s
>>> now[0] = 11.0
>>> lines.tell("readings", 1, 7, "DecodeError", "again")
>>> [line.split(":")[0] for line in lines.said]
["node 'score' dead-lettered readings", "node 'score'"]
>>> lines.said[1]
"node 'score': 2 more dead letters in 11 s, the latest readings:1:7 (DecodeError): again"
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

FIRST = 3  # dead letters of a node said one by one
EVERY_S = 10.0  # then at most one line this often
MAX_MESSAGE = 300  # characters of the reason in a line


class LetterLines:
    """The log lines of one node's dead letters; see the module docstring."""

    def __init__(self, node: str, first: int = FIRST, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.first = first
        self.every_s = every_s
        self.clock = clock
        self.count = 0
        self.quiet = 0
        self.since = 0.0
        self.said: list[str] = []

    def tell(self, stream: str, partition: int, offset: int, kind: str, message: str) -> None:
        """Count a dead letter of ``stream:partition:offset``; log a line if it is time."""
        self.count += 1
        where = f"{stream}:{partition}:{offset} ({kind}): {_short(message)}"
        now = self.clock()
        if self.count <= self.first:
            line = f"node {self.node!r} dead-lettered {where}"
            if self.count == self.first:
                line += f"; further ones at most every {self.every_s:g} s (doa dlq lists all)"
            self.since = now
        else:
            self.quiet += 1
            if now - self.since < self.every_s:
                return
            line = (f"node {self.node!r}: {self.quiet} more dead letters in "
                    f"{now - self.since:.0f} s, the latest {where}")
            self.quiet, self.since = 0, now
        self.said.append(line)
        del self.said[:-10]
        log.warning("%s", line)


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= MAX_MESSAGE else first[: MAX_MESSAGE - 1] + "…"
