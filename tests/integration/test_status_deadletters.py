"""``doa run``'s status line names the node that sends records to the dead-letter stream, the
stream, and how many more since the line before; the run stops on time while it does.

A walk saw progress ("in 2000 out 1800 dead 200", beside "dead 0" for every other node) and
not that one record in ten went to the dead-letter stream.
"""

from __future__ import annotations

import re

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, doa_env

pytestmark = pytest.mark.brokers("tansu", reason="the status line is doa run's own; CI time")

LINE = re.compile(r"^\[ *([\d.]+)s\] count: in (\d+) out (\d+)(?: dead letters (\d+)"
                  r"(?: \(\+(\d+)\))? to counting\.dlq)?$")


def test_the_status_line_says_how_many_records_went_to_dead_letters(broker: str) -> None:
    t = load_topology(COUNTING)
    prepare(t, broker)
    with Publisher("events", broker=broker, topology=t) as pub:
        for i in range(40):
            pub.send({"key": f"k{i % 4}", "n": i, "payload": "poison" if i % 10 == 3 else ""})

    for_s = 8
    done = doa_command("run", COUNTING, "--broker", broker, "--for", str(for_s),
                       env=doa_env(), timeout=120)
    text = done.stderr.decode()
    assert done.returncode == 0, text
    status = [LINE.match(line) for line in text.splitlines()
              if line.startswith("[") and "partitions of" not in line]  # the counts' lines
    assert status and all(status), text
    last = status[-1]
    assert last is not None and (last[2], last[3], last[4]) == ("40", "36", "4"), text
    said = 0  # each line's (+N) is what came since the line before
    for m in status:
        assert m is not None
        dead = int(m[4] or 0)
        assert int(m[5] or 0) == dead - said, text
        said = dead
    assert len(re.findall(r"dead-lettered events:", text)) == 3, text  # the first ones' reasons
    seconds = float(re.findall(r"run summary \(([\d.]+) s\)", done.stdout.decode())[0])
    assert seconds < for_s + 3, done.stdout.decode()
