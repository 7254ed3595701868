"""A node restarted after ``kill -9`` does not write again what its previous run wrote after
its snapshot (doa.runtime.written): every output id is in the log once, and the outputs are
those of a run that never crashed, on either engine.

Before, the replay from the snapshot wrote those outputs a second time (same ids), and the
nodes reading them took both: a detector counted the errors twice, and a learner reading a
restarted kernel node's features predicted again, under a new id (walk: ~1,000 second
predictions of 20,000 after a kill of the feature node). The faust engine did so until it
read its outputs at a restart too (one run: 3,320 outputs on tansu, 3,279 on Kafka).
"""

from __future__ import annotations

import os
import re
import signal
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.events import lineage_of
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING, doa_process, kill9
from tests.integration.helpers import Lines, Tail, wait_until

pytestmark = pytest.mark.broker
N = 3000


@pytest.mark.brokers("tansu", where={"engine": "faust"},
                     reason="faust on tansu is enough: the outputs are read back as on the "
                            "kafka engine, which runs on both brokers; CI time")
@pytest.mark.parametrize("engine", ["kafka", "faust"])
def test_a_restart_does_not_write_again_what_the_killed_run_wrote(
        broker: str, engine: str, tmp_path: Path) -> None:
    t = load_topology(COUNTING)
    prepare(t, broker)
    with Publisher("events", broker=broker, topology=t) as pub:
        for i in range(N):
            pub.send({"key": f"k{i % 13}", "n": i, "payload": ""})
    log_file = tmp_path / "doa.log"
    env = {"DOA_LOG_FILE": str(log_file), "DOA_MAX_RECORDS": "20",
           "DOA_SNAPSHOT_EVERY_RECORDS": "400", "DOA_SNAPSHOT_EVERY_MS": "600000"}
    first = doa_process("run", COUNTING, "--broker", broker, "--engine", engine, env=env)
    lines = Lines(first)
    with Tail(broker, "counts") as counts:
        assert wait_until(lambda: counts.poll(50) >= 0 and len(counts.records) >= N // 3, 120), \
            lines.text()
        kill9(first)
        first.wait()
        counts.drain(1000)
        # A loaded test process can see its third late: the run may have done everything and
        # snapshotted it idle before the kill, and then no output follows a snapshot.
        finished = len(counts.records) >= N
    second = doa_process("run", COUNTING, "--broker", broker, "--engine", engine, env=env)
    lines = Lines(second)
    try:
        with Tail(broker, "counts") as counts:
            def all_in() -> bool:
                counts.poll(100)
                return len({lineage_of(m.headers).parents[0]  # type: ignore[union-attr]
                            for m in counts.records}) >= N
            assert wait_until(all_in, 120), lines.text()
            outs = counts.drain(1500)
    finally:
        os.killpg(second.pid, signal.SIGTERM)
        second.wait(timeout=60)
    ids = Counter(lineage_of(m.headers).id for m in outs)  # type: ignore[union-attr]
    assert len(outs) == N and max(ids.values()) == 1, ids.most_common(3)
    said = re.findall(r"node count: (\d+) outputs its previous run wrote after the snapshots",
                      log_file.read_text())
    assert finished or (said and int(said[-1]) > 0), \
        "the kill must land between a snapshot and outputs"
    codec = t.codec("counts")
    per_key: dict[str, list[int]] = defaultdict(list)
    for m in outs:
        r = codec.decode(m.value)
        per_key[r["key"]].append(r["count"])
    assert {k: sorted(v) for k, v in per_key.items()} == {
        f"k{j}": list(range(1, len(range(j, N, 13)) + 1)) for j in range(13)}
