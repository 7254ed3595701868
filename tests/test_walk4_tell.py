"""walk4 finding 4: ``doa run``'s rate-limited dead-letter warning said "2 more dead letters"
when 5 went unsaid, and a letter of a new kind (a DecodeError after three ValueErrors) was
never a line of its own; a summary waited for a later letter, for ever if none came."""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable

from doa.runtime.tell import LetterLines


class Later:
    """A fake ``schedule``: the callbacks asked for, called when the fake clock reaches them."""

    def __init__(self) -> None:
        self.now = 0.0
        self.calls: list[tuple[float, Callable[[], None]]] = []

    def __call__(self, delay: float, callback: Callable[[], None]) -> None:
        self.calls.append((self.now + delay, callback))

    def clock(self) -> float:
        return self.now

    def advance(self, to: float) -> None:
        self.now = to
        due = [c for c in self.calls if c[0] <= to]
        self.calls = [c for c in self.calls if c[0] > to]
        for _, callback in sorted(due, key=lambda c: c[0]):
            callback()


def accounted(said: list[str]) -> int:
    """How many letters the lines said: one per 'dead-lettered' line, N per summary."""
    total = 0
    for line in said:
        if " dead-lettered " in line:
            total += 1
        else:
            m = re.search(r": (\d+) more dead letters? in ", line)
            assert m, line
            total += int(m[1])
    return total


def test_the_walks_letters_are_all_said_and_the_new_kind_at_once() -> None:
    later = Later()
    lines = LetterLines("price", clock=lambda: later.now, schedule=later)
    for offset in (1947, 1948, 1949):  # three NaN/inf orders
        lines.tell("orders", 1, offset, "ValueError", "feature 'weight_kg' is nan")
    lines.tell("orders", 1, 1950, "DecodeError/bad-marker", "cannot decode")  # the garbage
    assert len(lines.said) == 4, lines.said
    assert "orders:1:1950 (DecodeError/bad-marker)" in lines.said[3]
    assert lines.said[3].endswith("at most every 10 s per kind of error (doa dlq lists all)")
    later.advance(24.0)  # the replay: the decode error first in its batch, as the runner does
    lines.tell("orders", 1, 1954, "DecodeError/bad-marker", "cannot decode")
    for offset in (1951, 1952, 1953):
        lines.tell("orders", 1, offset, "ValueError", "feature 'weight_kg' is nan")
    assert lines.said[-1].startswith("node 'price': 1 more dead letter in 24 s, the latest "
                                     "orders:1:1951 (ValueError)")  # its interval was over
    later.advance(34.0)  # no further letter: the pending ValueError summary is said anyway
    assert accounted(lines.said) == lines.count == 8, lines.said
    assert lines.said[-1] == ("node 'price': 2 more dead letters in 10 s, the latest "
                              "orders:1:1953 (ValueError): feature 'weight_kg' is nan")
    assert not later.calls


def test_a_quiet_letter_is_said_when_its_interval_passes_without_another() -> None:
    later = Later()
    lines = LetterLines("n", first=1, every_s=10, clock=lambda: later.now, schedule=later)
    lines.tell("s", 0, 0, "KeyError", "'x'")
    later.advance(2.0)
    lines.tell("s", 0, 1, "KeyError", "'x'")
    assert len(lines.said) == 1 and [at for at, _ in later.calls] == [10.0]
    later.advance(9.9)
    assert len(lines.said) == 1
    later.advance(10.0)
    assert lines.said[-1] == ("node 'n': 1 more dead letter in 10 s, the latest "
                              "s:0:1 (KeyError): 'x'")


def test_a_final_flush_says_what_waits() -> None:
    later = Later()
    lines = LetterLines("n", first=1, every_s=10, clock=later.clock, schedule=later)
    for offset in range(3):
        lines.tell("s", 0, offset, "KeyError", "'x'")
    later.advance(1.0)
    lines.flush(final=True)  # the node stops before the 10 s pass
    assert lines.said[-1].startswith("node 'n': 2 more dead letters in 1 s, the latest s:0:2")
    assert accounted(lines.said) == 3


def test_kinds_are_rate_limited_each_on_its_own() -> None:
    later = Later()
    lines = LetterLines("n", first=0, every_s=10, clock=lambda: later.now, schedule=later)
    lines.tell("s", 0, 0, "A", "a")  # new kinds: said at once
    later.advance(6.0)
    lines.tell("s", 0, 1, "B", "b")
    lines.tell("s", 0, 2, "A", "a")
    lines.tell("s", 0, 3, "B", "b")
    assert len(lines.said) == 2
    later.advance(10.0)  # A's interval is over, B's not yet
    assert lines.said[-1].endswith("the latest s:0:2 (A): a") and len(lines.said) == 3
    later.advance(16.0)
    assert lines.said[-1].endswith("the latest s:0:3 (B): b") and len(lines.said) == 4
    assert accounted(lines.said) == 4


def test_every_letter_is_counted_once_whatever_the_timing() -> None:
    rng = random.Random(4)
    for _ in range(200):
        later = Later()
        lines = LetterLines("n", first=rng.randint(0, 4), every_s=10, clock=later.clock,
                            schedule=later)
        lines.said = _Unbounded()
        for offset in range(rng.randint(0, 60)):
            later.advance(later.now + rng.choice([0.0, 0.0, 0.5, 3.0, 12.0]))
            lines.tell("s", 0, offset, rng.choice(["A", "B", "C"]), "m")
        later.advance(later.now + 11.0)
        assert accounted(lines.said) == lines.count


class _Unbounded(list[str]):
    """``said`` keeps its last 10 lines; this one forgets none."""

    def __delitem__(self, index: object) -> None:
        pass


def test_the_running_loop_says_a_pending_summary() -> None:
    async def main() -> list[str]:
        lines = LetterLines("n", first=1, every_s=0.05)
        lines.tell("s", 0, 0, "KeyError", "'x'")
        lines.tell("s", 0, 1, "KeyError", "'x'")
        await asyncio.sleep(0.3)
        return lines.said

    said = asyncio.run(main())
    assert len(said) == 2 and said[1].startswith("node 'n': 1 more dead letter in 0 s, "), said
