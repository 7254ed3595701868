"""The topics of a running node that leave the broker, and come back.

A broker replaced by an empty one (the embedded broker keeps nothing across a restart; a
Kafka node whose data directory went) answers again on the same address without the node's
topics, and a topic can be deleted by hand. doa's own clients never create a topic
(:mod:`doa.engines.nocreate`: only ``doa deploy`` and ``doa run``'s preparation do, with the
declared partitions and settings), so the node has nothing to read and nowhere to write its
state. :class:`Vanished` takes what the broker lists of the node's inputs and state topic and
says once, at WARNING, which went and what brings them back, and, when they are back, where
the node starts from. :class:`TopicWatch` asks the broker for them (on each assignment, and
every second while the node is out of its group: :meth:`doa.engines.group.GroupMember._mind_topics`
on this engine, :class:`doa.engines.faust_topics.FaustTopicWatch` on the Faust engine).

Examples
--------
>>> said = []
>>> watch = Vanished("count", "k:9092", said.append, state_topic="c.count.state")
>>> watch.observe({"events": 4, "c.count.state": 4})
>>> watch.observe({"events": 0, "c.count.state": 0})
>>> watch.observe({"events": 0, "c.count.state": 0})  # said once
>>> watch.observe({"events": 4, "c.count.state": 4})
>>> print("\\n".join(said))  # doctest: +NORMALIZE_WHITESPACE
node 'count': stream 'events' and state topic 'c.count.state' are not on broker k:9092 any
more (the broker came back without its data, or the topic was deleted); the node waits: `doa
deploy` with this topology makes them again
node 'count': stream 'events' and state topic 'c.count.state' are on broker k:9092 again; the
node restores the snapshot that broker holds (none: it starts from the beginning of its
inputs)
>>> Vanished("count", "k:9092", said.append).observe({"events": 0})  # never seen: says nothing
>>> len(said)
2
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from aiokafka.errors import KafkaError

log = logging.getLogger("doa.engines.kafka")  # the engine's logger: its users filter on it

LOOK_EVERY_S = 1.0  # out of the group: how often the broker's topics are asked for


class Vanished:
    """Per node: its input streams seen on the broker, and those gone from it.

    Parameters
    ----------
    node : the node's name
    address : the broker's address, for the line
    say : where a line goes (default: a WARNING of the engine's logger, shown on stderr)
    state_topic : the node's state topic, named as such (other topics are its streams)
    """

    def __init__(self, node: str, address: str, say: Callable[[str], None] | None = None,
                 state_topic: str | None = None) -> None:
        self.node = node
        self.address = address
        self.say = say or log.warning
        self.state_topic = state_topic
        self.seen: set[str] = set()
        self.gone: set[str] = set()

    def observe(self, counts: Mapping[str, int]) -> None:
        """Take each input stream's (or the state topic's) partition count as the metadata has
        it (0: the broker does not have the topic); one line for those that went, one for
        those that came back."""
        back = sorted(t for t, n in counts.items() if n > 0 and t in self.gone)
        went = sorted(t for t, n in counts.items()
                      if n <= 0 and t in self.seen and t not in self.gone)
        self.seen.update(t for t, n in counts.items() if n > 0)
        self.gone.difference_update(back)
        self.gone.update(went)
        if went:
            self.say(f"node {self.node!r}: {self._named(went)} not on broker {self.address} any "
                     "more (the broker came back without its data, or the topic was deleted); "
                     "the node waits: `doa deploy` with this topology makes "
                     f"{'them' if len(went) > 1 else 'it'} again")
        if back:
            self.say(f"node {self.node!r}: {self._named(back)} on broker {self.address} again; "
                     "the node restores the snapshot that broker holds (none: it starts from "
                     "the beginning of its inputs)")

    def _named(self, topics: list[str]) -> str:
        names = [f"state topic {t!r}" if t == self.state_topic else f"stream {t!r}"
                 for t in sorted(topics, key=lambda t: (t == self.state_topic, t))]
        return f"{' and '.join(names)} {'are' if len(names) > 1 else 'is'}"


class TopicWatch:
    """A node's input streams and state topic, as the broker lists them, and whether the node
    is out of its group until they are all back.

    Parameters
    ----------
    node : the node's name
    address : the broker's address, for the lines
    reads : the node's input streams
    state_topic : the node's state topic
    say : where a line goes (default: a WARNING of ``logger``)
    logger : the engine's logger (default: the kafka engine's)

    Examples
    --------
    >>> said = []
    >>> watch = TopicWatch("count", "k:9092", ["events"], "c.count.state", say=said.append)
    >>> watch.wanted
    ['events', 'c.count.state']
    >>> watch.observe({"events", "c.count.state"}), watch.observe(set()), len(said)
    (True, False, 1)
    """

    def __init__(self, node: str, address: str, reads: Sequence[str], state_topic: str,
                 say: Callable[[str], None] | None = None,
                 logger: logging.Logger | None = None) -> None:
        self.node = node
        self.log = logger or log
        self.wanted = [*reads, state_topic]
        self.vanished = Vanished(node, address, say or self.log.warning,
                                 state_topic=state_topic)
        self.looked = 0.0  # when the broker was last asked
        self.leaving = False  # an assignment found topics missing: leave the group
        self.away: set[str] | None = None  # out of the group: the topics to subscribe again

    async def there(self, reader: Any) -> bool:
        """Whether the broker has all of the node's topics, asked afresh with ``reader`` (an
        ``AIOKafkaConsumer``); True if it cannot be asked (the broker is away: what needs it
        waits for it, as before)."""
        self.looked = time.monotonic()
        if reader is None:  # a stop given up (MountedNode.abandon): nothing to ask with
            return True
        try:
            have = await reader.topics()
        except KafkaError as exc:
            self.log.debug("node %s: listing topics: %s", self.node, exc)
            return True
        return self.observe(have)

    def observe(self, have: Iterable[str]) -> bool:
        """Take the topics the broker has; whether the node's are all among them."""
        listed = set(have)
        self.vanished.observe({t: int(t in listed) for t in self.wanted})
        return all(t in listed for t in self.wanted)

    def due(self) -> bool:
        """Whether a second has passed since the broker was last asked."""
        return time.monotonic() - self.looked >= LOOK_EVERY_S
