"""A consumer's fetch wait that stretches while the broker starves it, and shrinks back after.

doa's consumers ask for short fetch waits (10 ms: low latency). The embedded broker (tansu
0.6, memory storage) lists every record batch of a partition on each fetch, and, measured
here, a short fetch brings less the more batches the partition holds, and past ~10,000 of
them nothing at all, ever: a consumer sits still before records the broker holds. A node
reading 4 partitions of 15,000 one-record batches (a publisher sending records one at a time
makes them) read 301 of 60,000 records in 60 s with a 10 ms wait, all of them in 14 s with
30 ms and in 5 s with 100 ms. Apache Kafka answers as soon as it has records whatever the
wait, so a stretched wait costs nothing there.

:class:`FetchWait` keeps the wait a consumer should use, changed after each answer from the
broker: while an assigned partition holds records past the consumer's position (the answer's
high watermark says so) the wait doubles after an empty answer and grows by a quarter after
one that brought records (tansu's answers are partial: it read no further in the wait), up
to ``cap_ms``; once the consumer is caught up it is the configured wait again. Nothing
changes while no answer has come (a long wait still running is not a starved fetch). On
Apache Kafka a longer wait costs nothing: Kafka answers as soon as records come, the wait
only bounds an empty fetch. The functions below apply it to aiokafka's and kafka-python's
consumers (their fetchers read the wait from an attribute each time they build a request).

Examples
--------
>>> w = FetchWait(10)
>>> w.after(got=False, behind=True), w.after(got=False, behind=True)
(20, 40)
>>> w.after(got=True, behind=True)  # records, and more to read: a little longer
50
>>> w.after(got=False, behind=None)  # no answer since the last call: as it was
50
>>> w.after(got=True, behind=False)  # caught up: the configured wait
10
>>> w.after(got=False, behind=False)  # never below it
10
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)


class FetchWait:
    """The fetch wait (ms) a consumer configured with ``base_ms`` should use now."""

    def __init__(self, base_ms: int, cap_ms: int = 250) -> None:
        self.base_ms = base_ms
        self.cap_ms = max(cap_ms, base_ms)
        self.ms = base_ms
        self.answered: dict[Any, int | None] = {}  # partition -> when the broker last answered

    def after(self, got: bool, behind: bool | None) -> int:
        """The wait after a fetch that brought records (``got``) or not, with some assigned
        partition holding records past the consumer's position (``behind``) or not, or no
        answer from the broker since the last call (None)."""
        if behind is None:
            return self.ms
        if not behind:
            self.ms = self.base_ms
        else:
            grown = self.ms + max(self.ms // 4, 1) if got else 2 * self.ms
            self.ms = min(self.cap_ms, max(grown, 1))
        return self.ms


def behind(consumer: Any, positions: dict[Any, int]) -> bool:
    """Whether a partition of ``positions`` (the consumer's next offsets) is fetchable and
    holds records past it, as the consumer's last fetch of it reported (``highwater``)."""
    paused = consumer.paused()
    for tp, position in positions.items():
        if tp in paused:
            continue
        highwater = consumer.highwater(tp)
        if highwater is not None and highwater > position:
            return True
    return False


def apply_aiokafka(consumer: Any, wait: FetchWait, got: bool) -> None:
    """Update ``wait`` after a ``getmany`` of aiokafka's ``consumer`` and set its fetch wait."""
    fetcher = getattr(consumer, "_fetcher", None)
    subscription = getattr(consumer, "_subscription", None)
    assignment = getattr(getattr(subscription, "subscription", None), "assignment", None)
    if fetcher is None or assignment is None:
        return
    positions, answered = {}, {}
    buffered = getattr(fetcher, "_records", {})  # fetched, not yet handed out: not starved
    for tp in assignment.tps:
        state = assignment.state_value(tp)
        answered[tp] = state.timestamp
        if state.has_valid_position and state.timestamp != wait.answered.get(tp) and \
                tp not in buffered:
            positions[tp] = state.position  # answered since the last call
    wait.answered = answered
    _set(fetcher, "_fetch_max_wait_ms", wait, got,
         behind(consumer, positions) if positions else None)


def apply_kafka_python(consumer: Any, wait: FetchWait, got: bool) -> None:
    """Update ``wait`` after a ``poll`` of kafka-python's ``consumer`` and set its fetch
    wait (a poll waits for the fetch's answer: poll for longer than the wait)."""
    fetcher = getattr(consumer, "_fetcher", None)
    if fetcher is None or not isinstance(getattr(fetcher, "config", None), dict):
        return
    positions: dict[Any, int] = {}
    for tp in consumer.assignment():
        position = consumer._subscription.assignment[tp].position  # no offset lookup
        if position is not None:
            positions[tp] = getattr(position, "offset", position)
    _set(fetcher.config, "fetch_max_wait_ms", wait, got, behind(consumer, positions))


class Poll:
    """A kafka-python consumer's ``poll`` with a fetch wait that stretches while the broker
    starves it, each poll waiting longer than the fetch (at least ``floor_ms``).

    Examples
    --------
    >>> class Stub:  # a consumer without kafka-python's fetcher: the wait stays as it is
    ...     def poll(self, timeout_ms, **kw): return {"tp": [timeout_ms, kw]}
    >>> poll = Poll(Stub(), floor_ms=200)
    >>> poll(update_offsets=False), poll.stretched
    ({'tp': [200, {'update_offsets': False}]}, False)
    """

    def __init__(self, consumer: Any, base_ms: int = 10, floor_ms: int = 100) -> None:
        self.consumer = consumer
        self.wait = FetchWait(base_ms)
        self.floor_ms = floor_ms
        self.stretched = False  # the last poll's answer made the wait longer (starved)

    def __call__(self, **options: Any) -> dict[Any, list[Any]]:
        polled: dict[Any, list[Any]] = self.consumer.poll(
            timeout_ms=max(self.floor_ms, 2 * self.wait.ms), **options)
        before = self.wait.ms
        apply_kafka_python(self.consumer, self.wait, any(polled.values()))
        self.stretched = self.wait.ms > before
        return polled


def _set(target: Any, name: str, wait: FetchWait, got: bool, lagging: bool | None) -> None:
    before = wait.ms
    ms = wait.after(got, lagging)
    if ms != before:
        log.debug("fetch wait %s -> %s ms (behind: %s)", before, ms, lagging)
    if isinstance(target, dict):
        target[name] = ms
    else:
        setattr(target, name, ms)
