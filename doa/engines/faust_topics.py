"""The Faust engine's clients never create a topic; a node's topics that leave the broker.

As on the kafka engine (:mod:`doa.engines.nocreate`, :mod:`doa.engines.vanished`): the
aiokafka consumer and producer a Faust app makes (in :meth:`_create_consumer` of its consumer
thread, :meth:`_new_producer` of its producer) are marked by :func:`no_auto_create_clients`
before the app starts, so their metadata requests ask the broker to create nothing (the
embedded broker otherwise made a node's streams and state topic again, empty, with its default
4 partitions, as soon as it was replaced by an empty one; the node then stopped with "could not
read ...state/0 up to offset 1" once ``doa deploy`` had run). Only ``doa deploy`` and
``doa run``'s preparation create topics.

:class:`FaustTopicWatch` asks the broker, on each assignment and every second while the node is out
of its group, whether the node's inputs and state topic are there; the missing ones are said
once (:class:`~doa.engines.vanished.TopicWatch`, the kafka engine's too). No faust import here (see
:mod:`doa.engines.faust`).

Examples
--------
>>> watch = FaustTopicWatch("count", "k:9092", ["events"], "c.count.state")
>>> watch.log.name, watch.due()  # the Faust engine's lines; never asked yet
('doa.engines.faust', True)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from doa.engines.nocreate import no_auto_create
from doa.engines.vanished import TopicWatch

log = logging.getLogger("doa.engines.faust")  # the engine's logger: its users filter on it


def no_auto_create_clients(app: Any) -> None:
    """Mark the aiokafka clients ``app`` (a ``faust.App`` not started yet) will make, its
    consumer thread's and its producer's (:func:`doa.engines.nocreate.no_auto_create`)."""
    thread = app.consumer._thread
    create_consumer = thread._create_consumer

    def consumer(loop: Any) -> Any:
        return no_auto_create(create_consumer(loop))

    thread._create_consumer = consumer
    new_producer = app.producer._new_producer

    def producer(transactional_id: str | None = None) -> Any:
        return no_auto_create(new_producer(transactional_id))

    app.producer._new_producer = producer


class FaustTopicWatch(TopicWatch):
    """:class:`~doa.engines.vanished.TopicWatch` for a Faust app's node (the Faust engine's
    logger), with :meth:`mind`."""

    def __init__(self, node: str, address: str, reads: Sequence[str], state_topic: str,
                 say: Callable[[str], None] | None = None) -> None:
        super().__init__(node, address, reads, state_topic, say=say, logger=log)

    async def mind(self, app: Any, reader: Any) -> None:
        """Take ``app``'s consumer out of its group once an assignment found the node's
        topics missing (``leaving``), and back in once the broker has them all again (asked
        every second meanwhile). A consumer kept in the group holds partitions of topics that
        are gone when the group's assignment was made from metadata older than the broker's
        return, and aiokafka's fetcher then asks for their metadata without pause (a third
        of a core, hundreds of log lines a second, on the embedded broker)."""
        if self.leaving:
            self.leaving = False
            self.away = await leave(app)
        elif self.away is not None and self.due() and await self.there(reader):
            topics, self.away = self.away, None
            await app.consumer._thread.subscribe(topics)


async def leave(app: Any) -> set[str]:
    """Unsubscribe ``app``'s consumer (in its thread: it leaves the group); the topics it was
    subscribed to."""
    thread = app.consumer._thread
    consumer = thread._ensure_consumer()
    topics = set(consumer.subscription())
    await thread.call_thread(consumer.unsubscribe)
    return topics
