"""Say dead letters as they happen: one log line for each of a node's first few and for the
first of each new kind of error, then per kind one line at most every ``EVERY_S`` seconds with
how many more of that kind came.

A record that becomes a dead letter is kept (its bytes, where it was, why), but a running
``doa run`` showed only a count in its progress line; the user had to think of ``doa dlq``.
The lines go to the ``doa`` log, which the command line shows on stderr. Time here decides
only what is logged, never what a node does.

Every letter is said once: on a line of its own or counted in exactly one summary line. A
summary that is due is said when its interval passes, even if no letter comes after it: the
first quiet letter of a kind asks ``schedule`` (by default the running asyncio loop's
``call_later``, the loop that runs the node) to call :meth:`LetterLines.flush` then. Without
a running loop (a synchronous test harness) it waits for the next letter or a ``flush()``.

Examples
--------
>>> now = [0.0]
>>> lines = LetterLines("score", first=1, every_s=10, clock=lambda: now[0])
>>> lines.tell("readings", 1, 5, "DecodeError", "stream 'readings': cannot decode")
>>> lines.tell("readings", 1, 6, "DecodeError", "again")  # quiet: within 10 s
>>> lines.tell("readings", 1, 7, "ValueError", "nan")  # a new kind: said at once
>>> now[0] = 11.0
>>> lines.flush()  # what the loop calls 10 s after letter 6
>>> [line.split(":")[0] for line in lines.said]
["node 'score' dead-lettered readings", "node 'score' dead-lettered readings", "node 'score'"]
>>> lines.said[2]
"node 'score': 1 more dead letter in 11 s, the latest readings:1:6 (DecodeError): again"
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

FIRST = 3  # dead letters of a node said one by one
EVERY_S = 10.0  # then at most one line this often per kind of error
MAX_MESSAGE = 300  # characters of the reason in a line

Schedule = Callable[[float, Callable[[], None]], object]


@dataclass
class _Kind:
    """What is known of one kind of error: when it was last said, what came since."""

    since: float
    quiet: int = 0
    latest: str = ""


class LetterLines:
    """The log lines of one node's dead letters; see the module docstring.

    Parameters
    ----------
    node : the node's name, in every line
    first : this many of the node's letters are said one by one
    every_s : then a line per kind of error at most this often
    clock : seconds, monotonic
    schedule : ``schedule(delay_s, callback)`` calls back later; the default uses the running
        asyncio loop and does nothing without one

    Examples
    --------
    >>> now, later = [0.0], []
    >>> lines = LetterLines("n", first=0, every_s=5, clock=lambda: now[0],
    ...                     schedule=lambda delay, fn: later.append((delay, fn)))
    >>> for offset in (1, 2, 3):
    ...     lines.tell("s", 0, offset, "KeyError", "'x'")
    >>> [delay for delay, _ in later]  # one flush asked for, 5 s after the first quiet one
    [5.0]
    >>> now[0] = 5.0
    >>> later[0][1]()
    >>> lines.said[-1]
    "node 'n': 2 more dead letters in 5 s, the latest s:0:3 (KeyError): 'x'"
    """

    def __init__(self, node: str, first: int = FIRST, every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic,
                 schedule: Schedule | None = None) -> None:
        self.node = node
        self.first = first
        self.every_s = every_s
        self.clock = clock
        self.schedule = schedule
        self.count = 0
        self.said: list[str] = []
        self._kinds: dict[str, _Kind] = {}
        self._flush_at: float | None = None  # when a flush is scheduled, if one is

    def tell(self, stream: str, partition: int, offset: int, kind: str, message: str) -> None:
        """Count a dead letter of ``stream:partition:offset``; log a line if it is time."""
        self.count += 1
        where = f"{stream}:{partition}:{offset} ({kind}): {_short(message)}"
        now = self.clock()
        seen = self._kinds.get(kind)
        if seen is None or self.count <= self.first:
            line = f"node {self.node!r} dead-lettered {where}"
            if self.count == self.first or (seen is None and self.count > self.first):
                line += (f"; further ones at most every {self.every_s:g} s per kind of error "
                         "(doa dlq lists all)")
            if seen is None:
                self._kinds[kind] = _Kind(since=now)
            else:
                seen.since = now
            self._say(line)
            return
        seen.quiet += 1
        seen.latest = where
        self.flush()

    def flush(self, final: bool = False) -> None:
        """Say each kind's summary whose interval has passed (``final``: every one, the node
        is stopping); ask to be called again when the first of those still waiting is due
        (unless that call is already asked for)."""
        now = self.clock()
        waiting: list[float] = []
        for k in self._kinds.values():
            if not k.quiet:
                continue
            if final or now - k.since >= self.every_s:
                more = "1 more dead letter" if k.quiet == 1 else f"{k.quiet} more dead letters"
                self._say(f"node {self.node!r}: {more} in {now - k.since:.0f} s, "
                          f"the latest {k.latest}")
                k.quiet, k.since = 0, now
            else:
                waiting.append(k.since + self.every_s)
        if waiting and (self._flush_at is None or min(waiting) < self._flush_at):
            self._flush_at = min(waiting)
            (self.schedule or _later)(max(0.0, self._flush_at - now), self._scheduled)

    def _scheduled(self) -> None:
        self._flush_at = None  # this call was the one asked for
        self.flush()

    def _say(self, line: str) -> None:
        self.said.append(line)
        del self.said[:-10]
        log.warning("%s", line)


def _later(delay_s: float, callback: Callable[[], None]) -> object:
    """Call ``callback`` in ``delay_s`` seconds on the running asyncio loop, if there is one."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None  # no loop: the next letter or a flush() says it
    return loop.call_later(delay_s, callback)


def _short(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else ""
    return first if len(first) <= MAX_MESSAGE else first[: MAX_MESSAGE - 1] + "…"
