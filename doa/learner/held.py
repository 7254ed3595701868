"""Labels that come before their prediction: held in the node's state until it comes.

A learner (and a model node with labels) may see a label before the record it labels: a tie
of timestamps, or an upstream node that lags. Such a label is *held* under its join value in
an ordered dict of the state (``state["early"]``) until the record comes, within a horizon on
the inputs' event time:

- :func:`hold` keeps it; a second label for the same join value replaces the first, which is
  reported as ``duplicate``; beyond ``bound`` held labels the oldest is reported as
  ``overflow``;
- :func:`expire` reports as ``unknown`` the held labels that records at a given event time
  prove can match nothing any more: their time is more than ``wait_ms`` before it.

Reports go through the caller's ``report(label, reason, join, detail, anchor)``, which
writes a ``doa.UnmatchedLabel``. A node that declares no ``unmatched=`` stream cannot write
one: a report about the record in hand (a duplicate feature record, a label too late for its
prediction) makes that record a dead letter, but one about a held label or an evicted
prediction is not the record in hand (the report comes while the node processes a later
one), so it is :func:`dropped`: one line in the log, never an error. An error there made the
later record the dead letter and rolled the state back to the label still held, so every
record after it failed the same way, across restarts (walk 6).

A label stamped more than ``wait_ms`` *before* its prediction's record, which its node met
first anyway (the label came late in the log: a replayed or mis-stamped label stream, or a
join value used again days later), is joined all the same, its outcome's ``delay_ms``
negative; :func:`before_prediction` counts it in the state (``labels_before``) and says so in
the log once per node, naming the stream, the join value and the gap.

Examples
--------
>>> from collections import OrderedDict
>>> from doa.events import Event
>>> def label(join, ts):
...     return Event({"id": join}, stream="labels", partition=0, offset=ts, timestamp=ts)
>>> held, seen = OrderedDict(), []
>>> def report(event, reason, join, detail, anchor):
...     seen.append((reason, join))
>>> for join, ts in [("a", 1), ("b", 2), ("a", 3), ("c", 4)]:
...     hold(held, join, label(join, ts), bound=2, report=report)
>>> list(held), seen
(['a', 'c'], [('duplicate', 'a'), ('overflow', 'b')])
>>> expire(held, label("x", 100), wait_ms=96, report=report)
>>> list(held), seen[-1]
(['c'], ('unknown', 'a'))
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["Report", "before_prediction", "dropped", "expire", "hold"]

log = logging.getLogger(__name__)
_DROPPED: dict[str, int] = {}  # per node: reports dropped in this process (for the log's pace)

Report = Callable[[Any, str, str, str, Any], None]
"""``report(label, reason, join, detail, anchor)``: write one ``doa.UnmatchedLabel``."""


def hold(held: OrderedDict[str, Any], join: str, label: Any, *, bound: int,
         report: Report) -> None:
    """Hold ``label`` (an event) under ``join`` until its record comes.

    A label already held for ``join`` is reported as ``duplicate`` (the newer one is held);
    beyond ``bound`` held labels the oldest is reported as ``overflow``.
    """
    if join in held:
        report(held.pop(join), "duplicate", join, "a second label for a join value not "
               "predicted on yet; the newer label is held", label)
    held[join] = label
    if len(held) > bound:
        old_join, old = held.popitem(last=False)
        report(old, "overflow", old_join, f"{bound} labels wait for their prediction already",
               label)


def expire(held: OrderedDict[str, Any], event: Any, *, wait_ms: int, report: Report) -> None:
    """Report as ``unknown`` the held labels older than ``event``'s time by over ``wait_ms``.

    Records come in (nearly) timestamp order and a label's time is its record's time plus
    the delay, so once the records' event time passes a held label's time by ``wait_ms``,
    its record will not come any more. Held labels are checked in the order they came.
    """
    horizon = event.timestamp - wait_ms
    while held and next(iter(held.values())).timestamp < horizon:
        join, label = held.popitem(last=False)
        report(label, "unknown", join, "no prediction has this join value: no record with it "
               f"came within label_wait_ms={wait_ms} of event time (never seen, already "
               "labelled, or evicted)", [label, event])


def before_prediction(state: dict[str, Any], label: Any, predicted_at: int, *, wait_ms: int,
                      who: str, join: tuple[str, str], warned: set[str]) -> None:
    """Count a ``label`` (an event) stamped more than ``wait_ms`` before its prediction's
    record (``predicted_at``) in ``state["labels_before"]``, and log it the first time for
    the node (``warned``: the node's set of what it has told). The label is joined anyway:
    nothing is dropped; ``who`` names the node, ``join`` is (join field, its value).

    Examples
    --------
    >>> from doa.events import Event
    >>> late = Event({"id": "42"}, stream="labels", partition=0, offset=7, timestamp=0)
    >>> state, warned = {}, set()
    >>> before_prediction(state, late, 820_800_000, wait_ms=60_000, who="learner 'm'",
    ...                   join=("id", "42"), warned=warned)
    >>> state, warned
    ({'labels_before': 1}, {'label before prediction'})
    >>> print(gap(820_800_000), gap(5_400_000), gap(90_000))
    9.5 days 1.5 h 1.5 min
    """
    early = predicted_at - label.timestamp
    if early <= wait_ms:
        return
    state["labels_before"] = state.get("labels_before", 0) + 1
    if "label before prediction" in warned:
        return
    warned.add("label before prediction")
    log.warning("%s: stream %r partition %d offset %d: the label of %s=%r is stamped %s (%d ms) "
                "before its prediction's record, more than label_wait_ms=%d; joined all the "
                "same (its outcome's delay_ms is negative): check the label stream's "
                "timestamps and join values; counted in the state's labels_before, told once "
                "per node", who, label.stream, label.partition, label.offset, join[0], join[1],
                gap(early), early, wait_ms)


def dropped(who: str, event: Any, reason: str, join: str, detail: str,
            what: str = "label") -> int:
    """Say in the log that a report about ``event`` (not the record in hand) is dropped, as
    its node (``who``) declares no ``unmatched=`` stream; return how many this process has
    dropped for it. The first three are told one line each, then the 10th, 100th, 1,000th...
    (the record stays in its stream: the line names where).

    Examples
    --------
    >>> from doa.events import Event
    >>> label = Event({"id": "6000"}, stream="labels", partition=0, offset=2080, timestamp=0)
    >>> dropped("learner 'doctest'", label, "unknown", "6000", "never predicted on")
    1
    """
    n = _DROPPED[who] = _DROPPED.get(who, 0) + 1
    if n <= 3 or _power_of_ten(n):
        where = f"{event.stream}:{event.partition}:{event.offset}"
        # an evicted prediction's own record is not at hand: the one that pushed it out is
        why = f"{detail}; pushed out by {where}" if reason == "evicted" else f"{where}: {detail}"
        log.warning("%s: %s %s for join value %r (%s) dropped: no unmatched= stream is "
                    "declared to report it on; %d dropped by this process so far%s", who,
                    reason, what, join, why, n,
                    " (told at the first three, then at 10, 100, 1,000...)" if n == 3 else "")
    return n


def _power_of_ten(n: int) -> bool:
    while n % 10 == 0:
        n //= 10
    return n == 1


def gap(ms: int) -> str:
    """A duration for a reader: days, hours, minutes or seconds, one decimal."""
    for unit, size in (("days", 86_400_000), ("h", 3_600_000), ("min", 60_000)):
        if ms >= size:
            return f"{ms / size:.1f} {unit}"
    return f"{ms / 1000:.1f} s"
