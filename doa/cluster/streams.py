"""Which streams a broker has (with their partition counts, one metadata request), and a
one-line error naming a few of them for a stream it lacks.

A reader given a misspelt stream should hear that the stream is not there, and which ones
are: the broker's topics, without the machinery's (:func:`doa.cluster.admin.internal_topic`),
the closest names first, a few at most.

Examples
--------
>>> print(no_such_stream("readngs", "k:9092", ["alerts", "readings", "_doa_schemas",
...                                             "fraud.scorer.state"]))
stream 'readngs' does not exist on k:9092 (streams: readings, alerts)
>>> print(no_such_stream("x", "k:9092", []))
stream 'x' does not exist on k:9092 (it has no streams yet)
>>> print(no_such_stream("x", "k:9092", [f"s{i}" for i in range(9)]))
stream 'x' does not exist on k:9092 (streams: s0, s1, s2, s3, s4, ... 4 more)
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Protocol

from doa.cluster.admin import internal_topic
from doa.cluster.security import kafka_python_options
from doa.errors import DoaError

__all__ = ["broker_topics", "no_such_stream", "topic_partitions"]

SHOWN = 5


class _Metadata(Protocol):
    """What :func:`topic_partitions` asks of a client (a kafka-python ``KafkaConsumer``)."""

    def topics(self) -> set[str]: ...

    def partitions_for_topic(self, topic: str) -> set[int] | None: ...


def topic_partitions(client: _Metadata) -> dict[str, int]:
    """Every topic on ``client``'s broker and its number of partitions, by name: one metadata
    request (for every topic at once; the partitions come from the answer, cached by the
    client), nothing created.

    >>> class Client:
    ...     def topics(self): return {"readings", "alerts"}
    ...     def partitions_for_topic(self, topic): return {0, 1, 2} if topic == "alerts" else {0}
    >>> topic_partitions(Client())
    {'alerts': 3, 'readings': 1}
    """
    return {t: len(client.partitions_for_topic(t) or ()) for t in sorted(client.topics())}


def broker_topics(broker: str) -> dict[str, int]:
    """:func:`topic_partitions` of ``broker``, with a consumer of its own (closed after)."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker, **kafka_python_options(broker),
                      allow_auto_create_topics=False)
    try:
        return topic_partitions(c)
    finally:
        c.close()


def no_such_stream(stream: str, broker: str, topics: Iterable[str]) -> DoaError:
    """The error for ``stream`` missing from ``broker``, naming up to :data:`SHOWN` of its
    non-internal ``topics``, the names closest to ``stream`` first."""
    names = sorted(t for t in set(topics) if not internal_topic(t))
    if not names:
        return DoaError(f"stream {stream!r} does not exist on {broker} (it has no streams yet)")
    close = difflib.get_close_matches(stream, names, n=SHOWN, cutoff=0.6)
    ordered = close + [n for n in names if n not in close]
    more = len(ordered) - SHOWN
    listed = ", ".join(ordered[:SHOWN]) + (f", ... {more} more" if more > 0 else "")
    return DoaError(f"stream {stream!r} does not exist on {broker} (streams: {listed})")
