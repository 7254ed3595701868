"""kafka-python's wait between metadata requests, shortened for doa's one-off reads.

kafka-python 3.0 waits ``retry_backoff_ms`` (100 ms) after *any* metadata refresh before the
next one, a success included, and does not pass the client's own ``retry_backoff_ms`` down
to its cluster metadata (``kafka.net.manager`` builds ``ClusterMetadata`` without it). So
each ``topics()`` or ``partitions_for_topic()`` made within 100 ms of the bootstrap refresh
or of the one before waits out the rest of the 100 ms: ``read_registry`` took ~108 ms, ~90
of them waiting. The Java client waits only after a failed refresh (KAFKA-4024).

:func:`shorten` sets that wait to :data:`METADATA_BACKOFF_MS` on one client, for the
short-lived reads that ask for metadata and are gone (the registry read, the topic list):
``read_registry`` 108 -> 16 ms on tansu, measured. It is not applied to every client: a
long-lived one (a following Subscriber) whose broker goes away retries a failing refresh
that much sooner, its reconnect backoff grows with the failures, and it noticed its broker
back ~20 s later than with the default (measured in ``test_subscribe_streams``). If
kafka-python's internals change, nothing is changed.

Examples
--------
>>> from kafka.cluster import ClusterMetadata
>>> class Client:  # as a KafkaConsumer holds its cluster metadata
...     _cluster = ClusterMetadata()
>>> shorten(Client()).__class__.__name__, Client._cluster.config["retry_backoff_ms"]
('Client', 10)
"""

from __future__ import annotations

from typing import TypeVar

METADATA_BACKOFF_MS = 10
_Client = TypeVar("_Client")


def shorten(client: _Client) -> _Client:
    """Make :data:`METADATA_BACKOFF_MS` the metadata backoff of kafka-python ``client`` (a
    ``KafkaConsumer``); return it."""
    config = getattr(getattr(client, "_cluster", None), "config", None)
    if isinstance(config, dict) and "retry_backoff_ms" in config:
        config["retry_backoff_ms"] = METADATA_BACKOFF_MS
    return client
