"""How ``doa run`` takes SIGTERM and SIGINT: before the nodes start, and while they run.

Moved out of :mod:`doa.engines.launch` (at 392 lines) unchanged: :func:`stop_before_start`
while the broker starts and topics are created, then :func:`catch_signals` for the run.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable
from typing import Protocol

from doa.engines.outage import Say


class Stoppable(Protocol):
    """What the handler records: which signal stopped the run (a ``RunReport``)."""

    stopped_by: str


def catch_signals(stop: asyncio.Event, report: Stoppable, say: Say,
                  grace: float) -> Callable[[], None] | None:
    """SIGTERM/SIGINT set ``stop``; one more while stopping ends the process at once.

    A Python-level handler (not the loop's): it runs even while the loop waits on a broker
    that is gone. Returns the function that puts the previous handlers back (None outside the
    main thread, where no handler can be set).
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    loop = asyncio.get_running_loop()

    def handler(signum: int, frame: object) -> None:
        name = signal.Signals(signum).name
        if stop.is_set():
            os.write(2, f"{name} while stopping: exiting at once; what was not committed "
                        "will be reprocessed on restart (same event ids)\n".encode())
            os._exit(128 + signum)
        report.stopped_by = name
        loop.call_soon_threadsafe(stop.set)
        loop.call_soon_threadsafe(say, f"{name}: stopping (the batch, then flush, snapshot "
                                       f"and commit for at most {grace:g} s); send it again "
                                       "to exit at once")

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)
    return restore


_STOPPED_BEFORE_START: list[int] = []  # the signals stop_before_start took


def stop_before_start(signum: int, frame: object) -> None:
    """SIGTERM while the topology imports, the broker starts or topics are created: unwind
    (stopping the embedded broker) and exit 0, as a stop during the run does."""
    _STOPPED_BEFORE_START.append(signum)
    raise SystemExit(0)


def stopped_before_start() -> bool:
    """Whether :func:`stop_before_start` took a signal: its ``SystemExit`` raised inside a C
    extension's initialisation (numpy's, while a topology imports) comes out as another
    error (CI saw ``TypeError: expected a message argument``), which is then the stop's, not
    the topology's.

    >>> stopped_before_start()
    False
    """
    return bool(_STOPPED_BEFORE_START)
