"""``doa run`` says each of a node's first dead letters as it happens, in one line naming the
node, the record (stream:partition:offset), the error and, for bytes that do not decode, the
field; it said only a count in its progress line, so a user had to think of ``doa dlq``."""

from __future__ import annotations

import re

import pytest
from kafka import KafkaProducer

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.wire.codec import MARKER
from tests.integration.conftest import COUNTING
from tests.integration.helpers import doa_command, doa_env, read_stream

pytestmark = pytest.mark.brokers("tansu", reason="the lines are doa run's own; CI time")


def test_doa_run_says_the_first_dead_letters_one_line_each(broker: str) -> None:
    t = load_topology(COUNTING)
    prepare(t, broker)
    codec = t.codec("events")
    with Publisher("events", broker=broker, topology=t) as pub:
        for i in range(4):
            pub.send({"key": "k", "n": i, "payload": "poison" if i % 2 else ""})
    good = codec.encode({"key": "k", "n": 9, "payload": "abc"})
    cut = good[:-2]  # the payload string is cut short
    assert cut[:2] == MARKER
    producer = KafkaProducer(bootstrap_servers=broker)
    for value in (cut, cut):
        producer.send("events", key=b"k", value=value).get(30)
    producer.close()

    done = doa_command("run", COUNTING, "--broker", broker, "--for", "20",
                       env=doa_env(), timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    letters = read_stream(broker, t, "counting.dlq", expected=4)
    assert len(letters) == 4
    said = [line for line in done.stderr.decode().splitlines() if "dead-lettered" in line]
    assert len(said) == 3, done.stderr.decode()  # the first three; the rest counted quietly
    where = {(e["stream"], e["partition"], e["offset"]): e for e in letters}
    for line in said:
        m = re.fullmatch(r"warning: node 'count' dead-lettered (events):(\d+):(\d+) \(([\w/-]+)\): "
                         r"(.+?)(; further ones at most every 10 s per kind of error "
                         r"\(doa dlq lists all\))?",
                         line)
        assert m, line
        letter = where[(m[1], int(m[2]), int(m[3]))]
        assert m[4] == letter["error_type"]
        assert m[5] == letter["message"].splitlines()[0]
    assert said[2].endswith("(doa dlq lists all)")
    # the fourth is said too: in a summary, when its 10 s pass or when the node stops
    more = re.findall(r"node 'count': (\d+) more dead letters? in \d+ s, the latest ",
                      done.stderr.decode())
    assert len(said) + sum(map(int, more)) == 4, done.stderr.decode()
    # two poisoned events and two cut bodies: at least one of the three said is a cut one
    assert any(line.endswith("(in field Event.payload)") or "(in field Event.payload);" in line
               for line in said), said
