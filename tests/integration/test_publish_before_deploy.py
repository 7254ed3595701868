"""A stream that does not exist yet is not created by a publisher, and one that another client
created with more partitions than declared is refused by ``doa deploy`` and ``doa run``.

A newcomer's ``doa publish`` before ``doa deploy`` had the broker create the stream with its
default partitions (tansu: 4, the topology declared 1); deploy then only warned, and the node
reading it was assigned 4 input partitions for a state topic of 1: it processed nothing, with
no word on the console, and its stop timed out.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.cluster.admin import TopicSpec, ensure_topics
from doa.cluster.streams import broker_topics
from doa.engines.launch import prepare
from doa.errors import DoaError
from doa.local.embedded import BrokerError
from doa.topology.loader import load_topology
from tests.integration.conftest import ROOT
from tests.integration.helpers import doa_command, doa_env, one_line

pytestmark = pytest.mark.broker

MODULE = f'''
from doa import Topology

topology = Topology("narrow", schemas={str(ROOT / "tests" / "schemas")!r})
events = topology.stream("events", schema="testing.Event", key="key", partitions=1)
counts = topology.stream("counts", schema="testing.Count", key="key", partitions=1)


@topology.node(reads=events, writes=counts, state=dict)
def count(state, batch):
    return state, [(e, {{"key": e["key"], "n": e["n"], "count": 1, "total": e["n"]}})
                   for e in batch]
'''
EVENT = {"key": "a", "n": 1, "payload": ""}


def _module(tmp_path: Path) -> str:
    path = tmp_path / "narrow.py"
    path.write_text(MODULE)
    return str(path)


def test_a_publisher_does_not_create_a_stream_deploy_has_not(broker: str,
                                                             tmp_path: Path) -> None:
    module = _module(tmp_path)
    missing = (f"stream 'events' does not exist on {broker} (it has no streams yet); "
               "`doa deploy TOPOLOGY` creates a topology's streams")
    for topology in (load_topology(module), None):
        with pytest.raises(DoaError) as caught:
            Publisher("events", broker=broker, topology=topology)
        assert str(caught.value) == missing
    path = tmp_path / "one.jsonl"
    path.write_text('{"key": "a", "n": 1, "payload": ""}\n')
    done = doa_command("publish", "events", "--broker", broker, "-t", module, "-f", str(path),
                       env=doa_env())
    assert done.returncode == 1
    assert one_line(done.stderr) == f"error: {missing}"
    assert "events" not in broker_topics(broker), "the publisher created the stream"

    prepare(load_topology(module), broker)
    with Publisher("events", broker=broker, topology=load_topology(module)) as pub:
        pub.send(EVENT)
    assert pub.acknowledged == 1
    assert broker_topics(broker)["events"] == 1


def test_deploy_and_run_refuse_a_stream_with_more_partitions_than_declared(
        broker: str, tmp_path: Path) -> None:
    module = _module(tmp_path)
    asyncio.run(ensure_topics(broker, [TopicSpec("events", 3)]))  # another client's
    refused = ("stream 'events' has 3 partitions on the broker, the topology declares 1 "
               "(its topic was created or grown before: by another client, or declared "
               "otherwise; or this is an out-of-date copy of this topology): "
               "declare partitions=3 for it, or delete the topic and deploy again")
    with pytest.raises(BrokerError) as caught:
        prepare(load_topology(module), broker)
    assert str(caught.value) == refused
    assert set(broker_topics(broker)) & {"counts", "narrow.count.state"} == set(), \
        "a refused deploy created topics"
    for command in (["deploy", module], ["run", module, "--for", "5", "-q"]):
        done = doa_command(*command, "--broker", broker, env=doa_env())
        assert done.returncode == 1, done.stdout
        assert one_line(done.stderr) == f"error: {refused}", command
    with pytest.raises(DoaError) as caught:
        Publisher("events", broker=broker, topology=load_topology(module))
    assert str(caught.value).startswith(
        f"stream 'events' has 3 partitions on {broker}, topology 'narrow' declares 1 "), caught
    assert str(caught.value).endswith(": declare partitions=3 for it, or delete the topic and "
                                      "deploy again"), caught
