"""``doa dataset --from -1h`` on a stream whose event time is behind the wall clock (walk
finding: "wrote 0 rows ... (0 features)" and an empty file, no hint). When no outcome falls in
a time window, the command says what times the learner's outcomes span, on a real (embedded)
broker, through the ``doa`` command.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.collect.bounds import Bound
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology

ROOT = Path(__file__).resolve().parent.parent
FRAUD = str(ROOT / "topologies" / "fraud.py")
DAY = 86_400_000


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    with EmbeddedBroker() as b:
        yield b.address


def _dataset(broker: str, tmp_path: Path, *bounds: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOA_LOG_FILE": str(tmp_path / "doa.log")}
    return subprocess.run(
        [sys.executable, "-m", "doa.cli.app", "dataset", FRAUD, "scorer", "--out",
         str(tmp_path / "x.jsonl"), "--broker", broker, *bounds],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)


def test_an_empty_time_window_names_the_times_the_outcomes_span(broker: str,
                                                                 tmp_path: Path) -> None:
    t = load_topology(FRAUD)
    prepare(t, broker)
    first = int(time.time() * 1000) - 3 * DAY  # event time: three days behind
    with Publisher("outcomes", broker=broker, topology=t) as pub:
        for i in range(5):
            pub.send({"join": str(i), "key": "c1", "model": "scorer", "model_version": 1,
                      "prediction": False, "label": True, "correct": False, "error": 1.0,
                      "delay_ms": 1000, "timestamp": first + i}, timestamp_ms=first + 1000 * i)
    done = _dataset(broker, tmp_path, "--from", "-1h")
    assert done.returncode == 0, done.stderr
    assert "wrote 0 rows" in done.stderr
    expected = (f"the 5 outcomes of 'outcomes' are stamped {Bound(time_ms=first)} .. "
                f"{Bound(time_ms=first + 4000)} (event time")
    assert "warning: learner 'scorer': no outcome in --from " in done.stderr, done.stderr
    assert expected in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    done = _dataset(broker, tmp_path, "--from", f"{first}ms", "--to", f"{first + 2000}ms")
    assert "no outcome in" not in done.stderr, done.stderr  # rows in the window: no note
