"""A Publisher whose broker goes away names the records it could not deliver: the
:class:`doa.Unacknowledged` error carries their ids (what ``send`` returned) and the records,
in the order sent, so a service can resend exactly those (it could only count them before).
"""

from __future__ import annotations

import time

import pytest

from doa import Unacknowledged
from doa.client import Publisher
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING

pytestmark = pytest.mark.broker


def test_the_error_names_exactly_the_records_sent_after_the_broker_went() -> None:
    topology = load_topology(COUNTING)
    broker = EmbeddedBroker().start()
    try:
        prepare(topology, broker.address)
        pub = Publisher("events", broker=broker.address, topology=topology)
        for n in range(50):
            pub.send({"key": f"k{n % 7}", "n": n, "payload": ""})
        pub.flush()
        assert pub.acknowledged == 50
    finally:
        broker.stop()
    late = [{"key": f"k{n % 7}", "n": n, "payload": ""} for n in range(50, 70)]
    ids = [pub.send(record) for record in late]
    for record in late:
        record["payload"] = "changed after send"  # what was sent is what comes back
    started = time.monotonic()
    with pytest.raises(Unacknowledged) as caught:
        pub.close(timeout_s=3)
    assert time.monotonic() - started < 15
    error = caught.value
    assert str(error).startswith("stream 'events': 20 of 20 records not acknowledged by the "
                                 "broker ("), str(error)
    assert str(error).endswith("; 50 acknowledged in all"), str(error)
    assert error.ids == ids
    assert [r["n"] for r in error.records] == list(range(50, 70))
    assert {r["payload"] for r in error.records} == {""}
