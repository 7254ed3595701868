"""A Publisher whose broker went away before its records were acknowledged says so in its
own one-line error: kafka-python's producer flushes again when it closes, and its
``KafkaTimeoutError`` replaced the flush's message (then a traceback from ``__del__``)."""

from __future__ import annotations

import gc
import time

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.errors import DoaError
from doa.local.embedded import EmbeddedBroker
from doa.topology.loader import load_topology
from tests.integration.conftest import COUNTING

pytestmark = pytest.mark.broker


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_close_with_the_broker_gone_is_the_flush_error() -> None:
    t = load_topology(COUNTING)
    broker = EmbeddedBroker().start()
    try:
        prepare(t, broker.address)
        pub = Publisher("events", broker=broker.address, topology=t)
        pub.send({"key": "k", "n": 0, "payload": ""})
        pub.flush()
        broker.stop()
        for i in range(5):
            pub.send({"key": "k", "n": i + 1, "payload": ""})
        started = time.monotonic()
        with pytest.raises(DoaError) as caught:
            pub.close(timeout_s=3)
        assert time.monotonic() - started < 10
        assert str(caught.value).startswith("stream 'events': 5 of 5 records not "
                                            "acknowledged by the broker"), str(caught.value)
        assert str(caught.value).endswith("; 1 acknowledged in all")
        del pub, caught
        gc.collect()  # the producer's __del__ closed it again, and raised: "Exception ignored"
    finally:
        broker.stop()


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
def test_a_with_block_failing_with_the_broker_gone_leaves_only_its_own_error() -> None:
    """The with block's error path closed the producer without abandoning it: its close
    flushed and raised (suppressed), and its ``__del__`` raised again at exit."""
    t = load_topology(COUNTING)
    broker = EmbeddedBroker().start()
    try:
        prepare(t, broker.address)
        started = time.monotonic()
        with pytest.raises(DoaError) as caught, \
                Publisher("events", broker=broker.address, topology=t) as pub:
            pub.send({"key": "k", "n": 0, "payload": ""})
            pub.flush()
            broker.stop()
            for i in range(5):
                pub.send({"key": "k", "n": i + 1, "payload": ""})
            pub.flush(timeout_s=2)
        assert time.monotonic() - started < 15
        assert str(caught.value).startswith("stream 'events': 5 of 5 records not "
                                            "acknowledged by the broker"), str(caught.value)
        del pub, caught
        gc.collect()  # the producer's __del__ flushed again, and raised: "Exception ignored"
    finally:
        broker.stop()
