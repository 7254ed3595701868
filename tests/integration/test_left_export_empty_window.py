"""``doa export --from -1h`` on a stream whose event time is behind the wall clock wrote an
empty file and "exported 0 records", no hint. Like ``doa dataset``, it now says what times the
stream's records span, through the ``doa`` command on a real (embedded) broker.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.collect.bounds import Bound
from doa.collect.export import export
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology

ROOT = Path(__file__).resolve().parents[2]
FRAUD = str(ROOT / "topologies" / "fraud.py")
DAY = 86_400_000


@pytest.fixture(scope="module")
def embedded() -> Iterator[str]:
    with EmbeddedBroker() as b:
        yield b.address


def test_an_empty_time_window_names_the_times_the_records_span(
        embedded: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    t = load_topology(FRAUD)
    prepare(t, embedded)
    first = int(time.time() * 1000) - 3 * DAY  # event time: three days behind
    with Publisher("outcomes", broker=embedded, topology=t) as pub:
        for i in range(5):
            pub.send({"join": str(i), "key": "c1", "model": "scorer", "model_version": 1,
                      "prediction": False, "label": True, "correct": False, "error": 1.0,
                      "delay_ms": 1000, "timestamp": first + i}, timestamp_ms=first + 1000 * i)
    env = {**os.environ, "DOA_LOG_FILE": str(tmp_path / "doa.log")}
    done = subprocess.run(
        [sys.executable, "-m", "doa.cli.app", "export", FRAUD, "outcomes", "--out",
         str(tmp_path / "x.jsonl"), "--broker", embedded, "--from", "-1h"],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "exported 0 records" in done.stderr, done.stderr
    assert "warning: stream 'outcomes': no record in --from " in done.stderr, done.stderr
    expected = (f"the 5 records of 'outcomes' are stamped {Bound(time_ms=first)} .. "
                f"{Bound(time_ms=first + 4000)} (record timestamps")
    assert expected in done.stderr, done.stderr
    assert "give --from/--to in that range" in done.stderr, done.stderr
    with caplog.at_level(logging.WARNING, logger="doa.collect.export"):
        report = export(t, "outcomes", broker=embedded, out=str(tmp_path / "y.jsonl"),
                        start=Bound(time_ms=first), end=Bound(time_ms=first + 2000))
    assert report.records == 2
    assert "no record in" not in caplog.text  # rows in the window: no note
