"""doa's aiokafka clients never ask the broker to create a topic.

A Kafka Metadata request (v4 and later) carries ``allow_auto_topic_creation``; aiokafka sends
it as True, with no option to change it. The embedded broker (tansu) honours the flag and
otherwise creates any topic a client asks metadata of, with its default 4 partitions (Apache
Kafka does too with ``auto.create.topics.enable``): a node whose broker was replaced by an
empty one then recreated its streams with the broker's count, where nothing but
``doa deploy`` (and ``doa run``'s preparation) creates streams, with their declared
partitions. :func:`no_auto_create` makes a client's metadata requests ask for none
(aiokafka's ``MetadataRequest`` as the module ``aiokafka.client`` names it is replaced, once
per process, by one that asks for none while a client marked by :func:`no_auto_create`
updates its metadata; any other aiokafka client in the process keeps aiokafka's default).

Examples
--------
>>> from aiokafka.protocol.metadata import MetadataRequest_v5
>>> _request(["events"]).build(MetadataRequest_v5).allow_auto_topic_creation  # unmarked
True
"""

from __future__ import annotations

import contextvars
from typing import Any, TypeVar

import aiokafka.client
from aiokafka.protocol.metadata import MetadataRequest

C = TypeVar("C")

_ASKING: contextvars.ContextVar[Any] = contextvars.ContextVar("doa_no_auto_create",
                                                              default=None)
_MARK = "_doa_no_auto_create"


def _request(topics: list[str] | None = None,
             allow_auto_topic_creation: bool | None = None) -> MetadataRequest:
    """aiokafka's metadata request; one asking for no topic creation while a marked client
    updates its metadata."""
    client = _ASKING.get()
    if client is not None and getattr(client, _MARK, False):
        allow_auto_topic_creation = False
    return MetadataRequest(topics, allow_auto_topic_creation)


def no_auto_create(client: C) -> C:
    """Mark an aiokafka consumer, producer or admin client (before its start): its metadata
    requests ask the broker not to create the topics they name. Returns ``client``."""
    inner: Any = getattr(client, "_client", None) or getattr(client, "client", client)
    if getattr(inner, _MARK, False):
        return client
    update = inner._metadata_update

    async def metadata_update(cluster_metadata: Any, topics: Any) -> Any:
        token = _ASKING.set(inner)
        try:
            return await update(cluster_metadata, topics)
        finally:
            _ASKING.reset(token)

    inner._metadata_update = metadata_update
    setattr(inner, _MARK, True)
    setattr(aiokafka.client, "MetadataRequest", _request)  # noqa: B010 (a module global)
    return client
