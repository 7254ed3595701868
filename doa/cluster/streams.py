"""Which streams a broker has, and a one-line error naming a few of them for a stream it lacks.

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

from doa.cluster.admin import internal_topic
from doa.cluster.security import kafka_python_options
from doa.errors import DoaError

__all__ = ["broker_streams", "no_such_stream"]

SHOWN = 5


def broker_streams(broker: str) -> list[str]:
    """The names of every topic on ``broker`` (one metadata request; nothing is created)."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(bootstrap_servers=broker, **kafka_python_options(broker),
                      allow_auto_create_topics=False)
    try:
        return sorted(c.topics())
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
