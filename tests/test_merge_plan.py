"""The timestamp merge replays a run's order from the cuts that run recorded.

A first run takes records as they arrive, releasing past an empty input after
``max_idle_ms``; its batches' end positions are recorded as :class:`doa.runtime.cuts.CutLog`
records them. A second merge given those positions and every record at once (a restart
reading the logs whole) must take them in the first run's order, whatever the arrivals,
timestamps (not monotonic within a stream) and idle waits were; without the plan it takes the
timestamp order, which the first run's order differs from whenever it released past an input.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from doa.runtime.cuts import CutLog, plan
from doa.runtime.merge import TimestampMerge
from doa.runtime.runner import OutRecord, RawRecord

STREAMS = ["labels", "features", "drift"]


@st.composite
def runs(draw: st.DrawFn) -> tuple[dict[str, list[RawRecord]], list[tuple[str, int]]]:
    """Records per stream and a schedule of steps: (stream, n) makes its next n records
    arrive, ("tick", ms) moves the clock."""
    logs = {s: [RawRecord(s, 0, o, draw(st.integers(0, 50)), None, b"")
                for o in range(draw(st.integers(0, 12)))] for s in STREAMS}
    steps = draw(st.lists(st.tuples(st.sampled_from([*STREAMS, "tick"]), st.integers(1, 30)),
                          max_size=40))
    return logs, steps


def first_run(logs: dict[str, list[RawRecord]], steps: list[tuple[str, int]]
              ) -> tuple[list[RawRecord], list[bytes]]:
    merge = TimestampMerge(STREAMS, max_idle_ms=10)
    cuts = CutLog("node", STREAMS, writes=["out"])
    sent = dict.fromkeys(STREAMS, 0)
    now, taken, headers = 0.0, [], []
    for what, n in [*steps, ("tick", 100)]:
        if what == "tick":
            now += n
        else:
            merge.add(logs[what][sent[what]:sent[what] + n])
            sent[what] = min(len(logs[what]), sent[what] + n)
        batch = merge.release(now, caught_up=lambda s: True)  # nothing more is in its log yet
        if batch:
            taken.extend(batch)
            out = [OutRecord("out", 0, None, b"", 0, ())] if len(taken) % 2 else []
            for tagged in cuts.tag(0, merge.at, out):
                headers.append(dict(tagged.headers)["doa-cut"])
    return taken, headers


def drain(merge: TimestampMerge) -> list[RawRecord]:
    """Everything the merge releases with its inputs caught up, as time goes by."""
    out: list[RawRecord] = []
    for now in range(0, 1000, 50):
        out += merge.release(float(now), caught_up=lambda s: True)
    return out


@settings(max_examples=300, deadline=None)
@given(runs())
def test_a_replay_with_the_cuts_takes_the_records_in_the_first_runs_order(
        run: tuple[dict[str, list[RawRecord]], list[tuple[str, int]]]) -> None:
    logs, steps = run
    taken, headers = first_run(logs, steps)
    replay = TimestampMerge(STREAMS, max_idle_ms=10,
                            plan=plan(headers, "node", 0, covered=(0, 0, 0)))
    replay.add(r for s in STREAMS for r in logs[s])
    again = drain(replay)
    # The records up to the last cut an output carries (those after it wrote nothing: a
    # restart need not repeat their order) come again in the first run's order.
    cuts = plan(headers, "node", 0, covered=(-1, -1, -1))
    carried = sum(cuts[-1]) if cuts else 0
    assert again[:carried] == taken[:carried]


def test_without_the_cuts_a_replay_takes_another_order_when_the_run_released_early() -> None:
    logs = {"labels": [RawRecord("labels", 0, 0, 5, None, b"")],
            "features": [RawRecord("features", 0, o, 10 + o, None, b"") for o in range(3)],
            "drift": []}
    steps = [("features", 3), ("tick", 20), ("tick", 20), ("labels", 1)]  # the label: late
    taken, headers = first_run(logs, steps)
    assert [r.stream for r in taken] == ["features"] * 3 + ["labels"]
    plain = TimestampMerge(STREAMS, max_idle_ms=10)
    plain.add(r for s in STREAMS for r in logs[s])
    assert [r.stream for r in drain(plain)] == ["labels"] + ["features"] * 3
    planned = TimestampMerge(STREAMS, max_idle_ms=10, plan=plan(headers, "node", 0, (0, 0, 0)))
    planned.add(r for s in STREAMS for r in logs[s])
    assert drain(planned) == taken
