"""Ctrl-C while ``doa publish`` sends: stop cleanly and say what reached the broker.

The first SIGINT (or SIGTERM) does not raise in the middle of a send (a record half handed to
the producer would be neither counted nor refused): the send loop stops before the next record,
waits for the broker to acknowledge what was sent, for at most the shutdown grace
(``DOA_SHUTDOWN_GRACE_S``, :func:`doa.engines.outage.shutdown_grace_s`), and one line says how
many records were sent and how many acknowledged. A second signal, or a wait that outlasts the
grace (a broker that is gone), ends the process at once with the same line, the acknowledged
count then a lower bound.

Examples
--------
>>> s = Sending("events", total=10, grace_s=2.0)
>>> s.sent = 4
>>> print(s.line(acknowledged=4))  # doctest: +NORMALIZE_WHITESPACE
interrupted: 4 of 10 records sent to events and acknowledged; the other 6 were not sent
>>> print(s.line(acknowledged=3, at_least=True))  # doctest: +NORMALIZE_WHITESPACE
interrupted: 4 of 10 records sent to events, at least 3 acknowledged; 1 not acknowledged within
2 s (DOA_SHUTDOWN_GRACE_S): it may or may not be on the stream; the other 6 were not sent
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from doa.engines.outage import ENV_GRACE

EXIT_CODE = 128 + signal.SIGINT  # 130, as a shell reports a command ended by Ctrl-C


class Sending:
    """The progress of one send loop, and what a signal does to it.

    Parameters
    ----------
    stream : the stream the records go to (named in the line)
    total : how many records there are to send
    grace_s : how long an interrupted send waits for acknowledgements
    acknowledged : the acknowledged count so far (read when the line is written at once)
    say : where the line goes (default: standard error)
    """

    def __init__(self, stream: str, total: int, grace_s: float,
                 acknowledged: Callable[[], int] = lambda: 0,
                 say: Callable[[str], None] | None = None) -> None:
        self.stream = stream
        self.total = total
        self.grace_s = grace_s
        self.acknowledged = acknowledged
        self.say = say or _stderr
        self.sent = 0
        self.interrupted_at: float | None = None
        self.exit_code = EXIT_CODE  # 128 + the signal's number
        self._said = threading.Lock()  # one line, from the main thread or the timer
        self._timer: threading.Timer | None = None

    @property
    def interrupted(self) -> bool:
        return self.interrupted_at is not None

    def remaining_s(self) -> float:
        """What is left of the grace since the interruption (all of it if none)."""
        if self.interrupted_at is None:
            return self.grace_s
        return max(0.0, self.interrupted_at + self.grace_s - time.monotonic())

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[Sending]:
        """SIGINT/SIGTERM stop the loop instead of raising (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {sig: signal.signal(sig, self._handle)
                    for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
            if self._timer is not None:
                self._timer.cancel()

    def _handle(self, signum: int, frame: object) -> None:
        if self.interrupted:
            self.give_up()
        self.interrupted_at = time.monotonic()
        self.exit_code = 128 + signum
        # The main thread may be stuck in a flush the broker never answers: end it anyway.
        self._timer = threading.Timer(self.grace_s + 1.0, self.give_up)
        self._timer.daemon = True
        self._timer.start()

    def give_up(self) -> None:
        """Say what is known now and end the process (a second signal, or the grace over)."""
        self.report(self.acknowledged(), at_least=True)
        self.exit_now()

    def exit_now(self) -> None:
        """End the process without closing the client: with records unacknowledged its close
        would wait for the broker again (and kafka-python's finalizer print a traceback)."""
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)

    def report(self, acknowledged: int, at_least: bool = False) -> None:
        """Say the line once (later calls say nothing)."""
        if self._said.acquire(blocking=False):
            if self._timer is not None:
                self._timer.cancel()
            self.say(self.line(acknowledged, at_least))

    def line(self, acknowledged: int, at_least: bool = False) -> str:
        """``interrupted: S of T records sent to STREAM, A acknowledged; ...``."""
        unsent = self.total - self.sent
        rest = f"; the other {unsent} were not sent" if unsent else ""
        if acknowledged >= self.sent and not at_least:
            return (f"interrupted: {self.sent} of {self.total} records sent to {self.stream} "
                    f"and acknowledged{rest}")
        missing = self.sent - acknowledged
        it = "it" if missing == 1 else "they"
        return (f"interrupted: {self.sent} of {self.total} records sent to {self.stream}, "
                f"{'at least ' if at_least else ''}{acknowledged} acknowledged; {missing} not "
                f"acknowledged within {self.grace_s:g} s ({ENV_GRACE}): {it} may or may not "
                f"be on the stream{rest}")


def _stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def interrupt_within(seconds: float) -> None:
    """Make Ctrl-C (SIGINT) end the process within ``seconds`` even if the clean-up it starts
    hangs (a client closing against a broker that is gone): the usual KeyboardInterrupt, and
    a timer that exits with 130 when the clean-up is not done by then."""
    import os
    import signal
    import threading

    def handler(signum: int, frame: object) -> None:
        timer = threading.Timer(seconds, os._exit, args=(130,))
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
