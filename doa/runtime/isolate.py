"""Find the records a step raises on, in a batch it failed, with few copies of the state.

When a step raises on a batch, :class:`doa.runtime.runner.NodeRunner` restores the state as it
was before the batch and calls :func:`isolate`: only the records the step raises on alone
become dead letters, and the state reflects every other record exactly once, in order.

It used to call the step on each record alone, each call after a pickled copy of the state
(the step may change the state in place before it raises). With a state of some size that
copy is the cost: a step raising on one record in ten, with 20,000 small dicts in its state,
took ~14 s per batch of 500 on a 2-core machine, during which the node's event loop did nothing
else (no status line, no ``--for`` check: ``doa run --for 10`` stopped 7-29 s late).
Now the step is given the rest of the batch at once, as a list that notes how far the step
iterated it: the record it had reached when it raised is the likely culprit. The records before
it are run in one call, then that record alone, then the rest again. A copy of the state is
taken only when the state changed since the last one: one copy and two restores per failing
record instead of a copy per record; when the guess is wrong (the step raises
on a record it iterated past, or does not iterate its batch) the rest of the batch goes record by
record, as before. A step's result does not depend on how a batch is split (the engines cut
batches as records come), so the outcome is the same as record by record.

Examples
--------
>>> import pickle
>>> def step(state, batch):
...     for x in batch:
...         if x % 4 == 3:
...             raise ValueError(f"{x} ends in 3, in base 4")
...         state.append(x)
...     return state, [x * 10 for x in batch]
>>> calls, dead, took = [], [], []
>>> def call(state, batch):
...     calls.append(len(batch))
...     return step(state, batch)
>>> state = isolate([], list(range(9)), call, lambda s: pickle.dumps(s),
...                 took.extend, lambda i, exc: dead.append((i, str(exc))))
>>> state, took, dead
([0, 1, 2, 4, 5, 6, 8], [0, 10, 20, 40, 50, 60, 80], [(3, '3 ends in 3, in base 4'), \
(7, '7 ends in 3, in base 4')])
>>> calls  # the rest, the records before the culprit, the culprit alone; twice, then the rest
[9, 3, 1, 5, 3, 1, 1]
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

E = TypeVar("E")


class Watched(list[E]):
    """A batch that notes the furthest index a step's iteration reached (-1: none)."""

    reached = -1

    def __iter__(self) -> Iterator[E]:
        for i, item in enumerate(super().__iter__()):
            if i > self.reached:
                self.reached = i
            yield item


def isolate(state: Any, events: Sequence[E],
            call: Callable[[Any, list[E]], tuple[Any, list[Any]]],
            checkpoint: Callable[[Any], bytes], took: Callable[[list[Any]], None],
            failed: Callable[[int, Exception], None]) -> Any:
    """Run ``call`` (the step, its outputs encoded) on ``events`` from ``state`` so that every
    event it raises on alone is given to ``failed`` (with its index) and every other one is
    processed once, in order; ``took`` receives each successful call's outputs in order.
    Returns the state after the last event."""
    i, n, guessing = 0, len(events), True
    saved: bytes | None = None  # a copy of ``state`` as it is now (None: none yet)
    while i < n:
        if guessing and n - i > 1:
            rest: Watched[E] = Watched(events[i:])
            saved = saved or checkpoint(state)
            try:
                state, outs = call(state, rest)
            except Exception:
                state = pickle.loads(saved)
                k = rest.reached
                guessing = k >= 0  # a step that does not iterate its batch tells nothing
                if k > 0:
                    try:
                        state, outs = call(state, list(events[i:i + k]))
                    except Exception:  # it raised on a record it had passed: one by one
                        state, guessing = pickle.loads(saved), False
                        continue
                    took(outs)
                    i, saved = i + k, None
            else:
                took(outs)
                return state
        saved = saved or checkpoint(state)
        try:
            state, outs = call(state, [events[i]])
        except Exception as exc:
            state = pickle.loads(saved)  # ``saved`` is the state again
            failed(i, exc)
        else:
            took(outs)
            saved = None
        i += 1
    return state
