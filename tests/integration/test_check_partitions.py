"""``doa check --broker`` says what ``doa run`` would refuse: a stream's topic that exists with
another partition count than the topology declares."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from doa.cli.app import cli
from doa.engines.launch import prepare
from doa.topology.loader import load_topology

pytestmark = pytest.mark.broker

MODULE = '''
import os
from doa import Topology

PARTS = int(os.environ.get("TEST_PARTS", "1"))
topology = Topology("parts")
letters = topology.stream("letters", schema="doa.DeadLetter", key="node", partitions=PARTS)
'''


def check(module: Path, broker: str, parts: int) -> tuple[int, str]:
    result = CliRunner().invoke(cli, ["check", str(module), "--broker", broker],
                                env={"TEST_PARTS": str(parts)})
    return result.exit_code, result.output


def test_check_with_a_broker_refuses_fewer_partitions_than_declared(
        broker: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    module = tmp_path / "parts.py"
    module.write_text(MODULE)
    monkeypatch.setenv("TEST_PARTS", "2")
    prepare(load_topology(str(module)), broker)  # its topics, 2 partitions each

    code, output = check(module, broker, parts=3)
    assert code == 1, output
    assert "problem: topic 'letters' has 2 partitions on the broker, the topology declares 3" \
        in output
    assert "ok:" not in output and "would register" not in output

    code, output = check(module, broker, parts=1)  # doa run and deploy refuse it too
    assert code == 1, output
    assert ("problem: stream 'letters' has 2 partitions on the broker, the topology declares "
            "1 (its topic was created or grown before: by another client, or declared "
            "otherwise; or this is an out-of-date copy of this topology): declare "
            "partitions=2 for it, or delete the topic and deploy again") in output

    code, output = check(module, broker, parts=2)
    assert code == 0 and "topic" not in output, output


def test_check_with_a_broker_leaves_topics_not_created_yet_alone(
        broker: str, tmp_path: Path) -> None:
    module = tmp_path / "parts.py"
    module.write_text(MODULE)
    code, output = check(module, broker, parts=4)
    assert code == 0 and "ok: topology 'parts'" in output, output
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=broker)
    try:
        assert "letters" not in (consumer.topics() or set()), "check created a topic"
    finally:
        consumer.close()
