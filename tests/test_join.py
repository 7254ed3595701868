"""Join nodes in the in-memory harness, against a reference join computed by a plain loop.

Left and right records (``testing.Event``: key, n) join when their keys are equal and their
timestamps differ by at most ``within_ms``. Whatever the data, window and batch size, the
joined pairs must be exactly the reference's (each once), the output identical record for
record across batch sizes, and the unmatched reports exactly the records without a partner
that the window has passed.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from doa import Topology
from doa.join import JoinSpec
from doa.testing import Harness

SCHEMAS = Path(__file__).parent / "schemas"
Side = list[tuple[str, int]]  # (key, timestamp) per record; n is the index


def joining(within_ms: int, max_pending: int = 100_000, partitions: int = 2) -> Topology:
    t = Topology("joining", schemas=SCHEMAS)
    t.stream("lefts", schema="testing.Event", key="key", partitions=partitions)
    t.stream("rights", schema="testing.Event", key="key", partitions=partitions)
    t.stream("pairs", schema="testing.Count", key="key", partitions=partitions)
    t.stream("unmatched", schema="doa.UnmatchedLabel")
    t.join("pair", left="lefts", right="rights", on="key", within_ms=within_ms,
           writes="pairs", unmatched="unmatched", max_pending=max_pending,
           output=lambda left, right: {"key": left["key"], "n": left["n"], "count": right["n"],
                                       "total": 0})
    return t


def run(t: Topology, lefts: Side, rights: Side, batch_size: int) -> Harness:
    h = Harness(t, batch_size=batch_size)
    for stream, side in (("lefts", lefts), ("rights", rights)):
        h.publish(stream, [{"key": k, "n": n} for n, (k, _) in enumerate(side)],
                  timestamps=[ts for _, ts in side])
    h.run()
    return h


def reference(lefts: Side, rights: Side, within_ms: int) -> list[tuple[int, int]]:
    return sorted((i, j) for i, (lk, lt) in enumerate(lefts) for j, (rk, rt) in enumerate(rights)
                  if lk == rk and abs(lt - rt) <= within_ms)


def reference_unmatched(lefts: Side, rights: Side, within_ms: int,
                        partitions: int, t: Topology) -> set[tuple[str, int]]:
    """Records with no partner that a later record of their partition pushed out of the window."""
    pairs = reference(lefts, rights, within_ms)
    matched = {("lefts", i) for i, _ in pairs} | {("rights", j) for _, j in pairs}
    from doa.events import key_bytes, partition_for

    def part(key: str) -> int:
        return partition_for(key_bytes(key), partitions)

    latest: dict[int, int] = {}
    for key, ts in [*lefts, *rights]:
        latest[part(key)] = max(latest.get(part(key), ts), ts)
    return {(stream, n) for stream, side in (("lefts", lefts), ("rights", rights))
            for n, (key, ts) in enumerate(side)
            if (stream, n) not in matched and ts < latest[part(key)] - within_ms}


def side(draw: Any, n: int) -> Side:
    keys = draw(st.lists(st.sampled_from("abcd"), min_size=n, max_size=n))
    gaps = draw(st.lists(st.integers(0, 15), min_size=n, max_size=n))
    times, now = [], 0
    for gap in gaps:  # each stream in time order, as a producer writes it
        now += gap
        times.append(now)
    return list(zip(keys, times, strict=True))


@st.composite
def cases(draw: Any) -> tuple[Side, Side, int]:
    return (side(draw, draw(st.integers(0, 40))), side(draw, draw(st.integers(0, 40))),
            draw(st.integers(0, 25)))


def pairs_of(h: Harness) -> list[tuple[int, int]]:
    return [(r["n"], r["count"]) for r in h.records("pairs")]


@settings(max_examples=60, deadline=None)
@given(cases(), st.integers(1, 30))
def test_join_equals_the_reference_under_any_batch_size(case: tuple[Side, Side, int],
                                                        batch_size: int) -> None:
    lefts, rights, within = case
    t = joining(within)
    h = run(t, lefts, rights, batch_size)
    got = pairs_of(h)
    assert sorted(got) == reference(lefts, rights, within)
    whole = run(joining(within), lefts, rights, 1000)
    assert [(r.partition, r.offset, dict(r), r.id) for r in h.records("pairs")] == \
        [(r.partition, r.offset, dict(r), r.id) for r in whole.records("pairs")]
    reported = {(u["stream"], u["partition"], u["offset"]) for u in h.records("unmatched")}
    offsets = {(s, p, o): n for s in ("lefts", "rights")
               for p, log in enumerate(h.logs[s]) for o, n in
               enumerate(t.codec(s).decode(r.value or b"")["n"] for r in log)}
    assert {u["reason"] for u in h.records("unmatched")} <= {"unknown"}
    assert {(s, offsets[(s, u["partition"], u["offset"])]) for u in h.records("unmatched")
            for s in [u["stream"]]} == reference_unmatched(lefts, rights, within, 2, t)
    assert len(reported) == len(h.records("unmatched"))  # each reported once


def test_each_side_joins_every_partner_in_the_window_and_parents_are_both() -> None:
    h = run(joining(10, partitions=1), [("a", 0), ("a", 12), ("b", 25)],
            [("a", 5), ("a", 20), ("a", 40)], batch_size=2)
    assert pairs_of(h) == [(0, 0), (1, 0), (1, 1)]
    lefts, rights = h.records("lefts"), h.records("rights")
    lineage = h.records("pairs")[1].lineage
    assert lineage is not None and set(lineage.parents) == {lefts[1].id, rights[0].id}
    assert h.records("pairs")[1].timestamp == 12  # the later parent's event time
    assert [(u["stream"], u["offset"], u["join"]) for u in h.records("unmatched")] == \
        [("lefts", 2, "b")]


def test_a_full_buffer_evicts_the_oldest_and_reports_overflow() -> None:
    h = run(joining(1000, max_pending=3, partitions=1), [("a", i) for i in range(5)], [],
            batch_size=10)
    reports = h.records("unmatched")
    assert [(u["reason"], u["offset"]) for u in reports] == [("overflow", 0), ("overflow", 1)]
    assert h.state("pair")[0]["pending"] == 3


def test_state_pickles_and_resumes_where_it_stopped() -> None:
    """A restored snapshot continues exactly as the uninterrupted state (what kill -9 needs)."""
    lefts = [("k", i * 3) for i in range(30)]
    rights = [("k", i * 3 + 1) for i in range(30)]
    t = joining(4, partitions=1)
    node = t.nodes["pair"]
    whole = run(t, lefts, rights, 7)
    events = sorted([*whole.records("lefts"), *whole.records("rights")],
                    key=lambda e: (e.timestamp, e.stream != "lefts"))
    state, first = node.step(node.state(), events[:25])
    restored = pickle.loads(pickle.dumps(state))  # what a snapshot holds
    assert restored["order"][0] is restored["keys"]["k"][restored["order"][0][1]][0]
    _, rest = node.step(restored, events[25:])
    _, uninterrupted = node.step(node.state(), events)
    def pair(out: Any) -> tuple[int, int, list[bytes]]:
        return out[2]["n"], out[2]["count"], [p.id for p in out[0]]
    assert [pair(o) for o in first + rest] == [pair(o) for o in uninterrupted]
    assert sorted(pairs_of(whole)) == reference(lefts, rights, 4)


def test_checks_and_describe() -> None:
    t = Topology("bad", schemas=SCHEMAS)
    t.stream("lefts", schema="testing.Event")
    t.stream("rights", schema="testing.Count")
    t.stream("out", schema="testing.Count")
    t.stream("unmatched", schema="testing.Count")
    node = t.join("j", left="lefts", right="rights", on=("payload", "colour"), within_ms=5,
                  writes="out", unmatched="unmatched")
    problems = t.validate()
    assert any("join key field 'colour' is not a field of stream 'rights'" in p for p in problems)
    assert any("unmatched stream 'unmatched' must have schema doa.UnmatchedLabel" in p
               for p in problems)
    assert isinstance(node.spec, JoinSpec)
    assert node.describe()["streams"] == {"left": "lefts", "right": "rights", "joined": "out",
                                          "unmatched": "unmatched"}
