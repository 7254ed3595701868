"""A published model version takes effect where the log ended when it was published, in event
time: a rebuild of the predictions from the log switches at the same record as the live node,
and lineage finds the version that made a prediction.

Before, ``doa model publish`` stamped the version with the wall clock. Records whose event time
is earlier (a backfill, a lagging producer, `doa publish --timestamp-field`) were scored live
with the new version once it had arrived, but a rebuild merged every one of them before it
(walk: live 3,000 with v1 and 500 with v2, the rebuild 3,500 with v1), and ``doa lineage``
said "made by: not found" for a version that was published.
"""

from __future__ import annotations

import asyncio
import pickle
import threading
from pathlib import Path
from typing import Any

import pytest

from doa.engines.launch import prepare, run_nodes
from doa.topology.loader import load_topology
from tests.integration.helpers import doa_command, read_stream, wait_until
from tests.integration.test_model_versions import TOPOLOGY, by_join, send, setup
from tests.test_model_versions import Scaled, rows

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="broker-independent logic; CI time")]

REBUILD = TOPOLOGY.replace('Topology("mv"', 'Topology("mv_rebuild"').replace(
    'writes="scores"', 'writes="rebuilt", versions="m.versions"').replace(
    'topology.stream("scores"', 'topology.stream("m.versions", schema="doa.ModelArtifact", '
    'partitions=2)\ntopology.stream("rebuilt"').replace('models="events"', 'models="rebuilt.events"'
    ).replace('topology.stream("events"', 'topology.stream("rebuilt.events"')
FIRST, LATER = 1_000_000, 2_000_000  # event times long before the wall clock


def _run(t: Any, broker: str, expected_in: int) -> Any:
    result: dict[str, Any] = {}

    def run() -> None:
        result["report"] = asyncio.run(run_nodes(
            t, broker, ["m"], seconds=90, signals=False,
            until=lambda stats: bool(stats["m"].records_in >= expected_in)))

    worker = threading.Thread(target=run)
    worker.start()
    return worker, result


def test_a_rebuild_switches_version_where_the_live_node_did(broker: str,
                                                            tmp_path: Path) -> None:
    path, t = setup(tmp_path, broker)
    model = tmp_path / "v2.pkl"
    model.write_bytes(pickle.dumps(Scaled(2.0)))
    data = rows(500)
    # live: 300 records, the version published once they are scored, then 200 more
    worker, result = _run(t, broker, 500 + 2)  # and one version record per partition
    send(t, broker, data[:300], FIRST)
    assert wait_until(lambda: len(read_stream(broker, t, "scores", expected=300)) >= 300, 60)
    done = doa_command("model", "publish", path, "m", str(model), "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    send(t, broker, data[300:], LATER)
    worker.join(120)
    assert not worker.is_alive() and result["report"].stats["m"].dead_letters == 0
    live = {j: r["model_version"] for j, r in by_join(
        read_stream(broker, t, "scores", expected=500)).items()}
    assert live == {j: 1 if j < 300 else 2 for j in range(500)}

    # a rebuild: the same model node in another topology, reading the same two logs
    rebuild_path = tmp_path / "mv_rebuild.py"
    rebuild_path.write_text(REBUILD)
    r = load_topology(str(rebuild_path))
    prepare(r, broker)
    worker, result = _run(r, broker, 500 + 2)
    worker.join(120)
    assert not worker.is_alive() and result["report"].stats["m"].dead_letters == 0
    rebuilt = {j: x["model_version"] for j, x in by_join(
        read_stream(broker, r, "rebuilt", expected=500)).items()}
    assert rebuilt == live

    # lineage names the version's model event
    v2 = next(x for x in read_stream(broker, t, "scores", expected=500)
              if x["model_version"] == 2)
    traced = doa_command("lineage", f"scores:{v2.partition}:{v2.offset}", path,
                         "--broker", broker)
    assert traced.returncode == 0, traced.stderr.decode()
    text = traced.stdout.decode()
    assert "made by" in text and "not found" not in text, text
