"""A join node survives kill -9 on a real broker: after three kills at random moments and a
final run, the joined pairs (de-duplicated by event id) are exactly a plain-loop reference
join's, each repeated output has the same id and the same value as the run that never crashed
(the in-memory harness), and the unmatched reports are exactly the reference's.

The embedded broker only: recovery goes through snapshots and offsets, which
tests/integration/test_kill9.py checks on both brokers; this test checks the join's buffers
are in that state.
"""

from __future__ import annotations

import os
import random
import signal
import time
from collections import defaultdict
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.testing import Harness
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process, kill9
from tests.integration.helpers import Tail
from tests.test_join import SCHEMAS, reference, reference_unmatched

pytestmark = pytest.mark.broker
N, WITHIN = 1500, 6
TOPOLOGY = f'''
from doa import Topology

topology = Topology("joining", schemas={str(SCHEMAS)!r})
topology.stream("lefts", schema="testing.Event", key="key", partitions=2)
topology.stream("rights", schema="testing.Event", key="key", partitions=2)
topology.stream("pairs", schema="testing.Count", key="key", partitions=2)
topology.stream("unmatched", schema="doa.UnmatchedLabel")
topology.join("pair", left="lefts", right="rights", on="key", within_ms={WITHIN},
              writes="pairs", unmatched="unmatched",
              output=lambda left, right: {{"key": left["key"], "n": left["n"],
                                          "count": right["n"], "total": 0}})
'''
ENV = {"DOA_MAX_RECORDS": "50", "DOA_SNAPSHOT_EVERY_RECORDS": "200",
       "DOA_SNAPSHOT_EVERY_MS": "200"}


def data(rnd: random.Random) -> list[tuple[str, int]]:
    times = sorted(rnd.randrange(4 * N) for _ in range(N))
    return [(f"k{rnd.randrange(8)}", ts) for ts in times]


@pytest.mark.brokers("tansu", reason="snapshot recovery is checked on both in test_kill9")
def test_join_after_kill_9_equals_the_reference(broker: str, tmp_path: Path) -> None:
    path = tmp_path / "joining.py"
    path.write_text(TOPOLOGY)
    topology = load_topology(str(path))
    prepare(topology, broker)
    rnd = random.Random(23)
    lefts, rights = data(rnd), data(rnd)
    for stream, side in (("lefts", lefts), ("rights", rights)):
        with Publisher(stream, broker=broker, topology=topology) as pub:
            for n, (key, ts) in enumerate(side):
                pub.send({"key": key, "n": n}, timestamp_ms=ts)
    expected_pairs = reference(lefts, rights, WITHIN)
    harness = Harness(load_topology(str(path)), batch_size=50)
    for stream, side in (("lefts", lefts), ("rights", rights)):
        harness.publish(stream, [{"key": k, "n": n} for n, (k, _) in enumerate(side)],
                        timestamps=[ts for _, ts in side])
    harness.run()
    expected = {s: {lineage_of(r.headers).id: r.value  # type: ignore[union-attr]
                    for part in harness.logs[s] for r in part} for s in ("pairs", "unmatched")}
    assert sorted((r["n"], r["count"]) for r in harness.records("pairs")) == expected_pairs

    with Tail(broker, "pairs") as pairs, Tail(broker, "unmatched") as unmatched:
        for _ in range(3):
            pairs.drain(idle_ms=300)
            seen = len(pairs.records)
            if len({lineage_of(m.headers).id for m in pairs.records}) >= len(expected["pairs"]):
                break  # a worker ended the work before its kill (a loaded test process polls late)
            worker = doa_process("run", str(path), "--broker", broker, "--quiet", env=ENV)
            try:
                deadline = time.monotonic() + 30
                while len(pairs.records) <= seen and time.monotonic() < deadline:
                    pairs.poll(50)
                assert len(pairs.records) > seen, "the restarted worker produced nothing"
                time.sleep(rnd.uniform(0.05, 0.4))
            finally:
                kill9(worker)
        final = doa_process("run", str(path), "--broker", broker, "--quiet", env=ENV)
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                pairs.poll(100)
                unmatched.poll(10)
                if len({lineage_of(m.headers).id for m in pairs.records}) >= \
                        len(expected["pairs"]) and len({lineage_of(m.headers).id for m in
                                                        unmatched.records}) >= \
                        len(expected["unmatched"]):
                    break
        finally:
            os.killpg(final.pid, signal.SIGTERM)
            final.wait(timeout=30)
        got = {"pairs": pairs.drain(300), "unmatched": unmatched.drain(300)}

    for stream in ("pairs", "unmatched"):
        by_id: dict[bytes, set[bytes]] = defaultdict(set)
        for m in got[stream]:
            by_id[lineage_of(m.headers).id].add(m.value)  # type: ignore[union-attr]
        assert all(len(v) == 1 for v in by_id.values()), f"{stream}: a repeated id changed"
        assert {i: next(iter(v)) for i, v in by_id.items()} == expected[stream], stream
    print(f"\njoin after 3 kills: {len(got['pairs'])} pair records for "
          f"{len(expected['pairs'])} pairs, {len(got['unmatched'])} unmatched for "
          f"{len(expected['unmatched'])}")
    codec = topology.codec("unmatched")
    offsets = {(s, p, o): topology.codec(s).decode(r.value or b"")["n"]
               for s in ("lefts", "rights") for p, log in enumerate(harness.logs[s])
               for o, r in enumerate(log)}
    reported = {(u["stream"], offsets[(u["stream"], u["partition"], u["offset"])])
                for u in (codec.decode(v) for v in expected["unmatched"].values())}
    assert reported == reference_unmatched(lefts, rights, WITHIN, 2, topology)
    assert len(expected_pairs) > 100 and len(reported) > 100  # both cases are exercised
