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
writes a ``doa.UnmatchedLabel`` (or fails when none is declared): nothing is dropped silently.

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

from collections import OrderedDict
from collections.abc import Callable
from typing import Any

__all__ = ["Report", "expire", "hold"]

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
