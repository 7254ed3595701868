"""The faust engine's clients ask no topic creation; a node out of its group while its topics
are gone (doa.engines.faust_topics), without a broker."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.protocol.metadata import MetadataRequest_v5

pytest.importorskip("faust")

from doa.engines import nocreate
from doa.engines.faust import app_settings, faust
from doa.engines.faust_topics import FaustTopicWatch, no_auto_create_clients


def test_the_clients_a_faust_app_makes_ask_no_topic_creation() -> None:
    async def made() -> tuple[Any, Any]:
        app = faust.App("t.n.faust", broker="kafka://127.0.0.1:1", **app_settings())
        no_auto_create_clients(app)
        consumer = app.consumer._thread._create_consumer(loop=asyncio.get_running_loop())
        return consumer, app.producer._new_producer()

    consumer, producer = asyncio.run(made())
    for inner in (consumer._client, producer.client):
        assert getattr(inner, "_doa_no_auto_create", False)
        token = nocreate._ASKING.set(inner)
        try:
            request = nocreate._request(["events"]).build(MetadataRequest_v5)
        finally:
            nocreate._ASKING.reset(token)
        assert request.allow_auto_topic_creation is False


class _Reader:
    def __init__(self, *topics: str) -> None:
        self.have = set(topics)

    async def topics(self) -> set[str]:
        return set(self.have)


class _Thread:
    def __init__(self) -> None:
        self.subscribed: set[str] = {"events"}
        self.calls: list[str] = []

    def _ensure_consumer(self) -> Any:
        thread = self

        class Consumer:
            def subscription(self) -> set[str]:
                return set(thread.subscribed)

            def unsubscribe(self) -> None:
                thread.subscribed = set()
                thread.calls.append("unsubscribe")

        return Consumer()

    async def call_thread(self, fun: Any) -> Any:
        return fun()

    async def subscribe(self, topics: set[str]) -> None:
        self.subscribed = set(topics)
        self.calls.append("subscribe")


def test_out_of_the_group_while_the_topics_are_gone_and_back_once_they_all_are() -> None:
    said: list[str] = []
    watch = FaustTopicWatch("count", "k:9092", ["events"], "c.count.state", say=said.append)
    thread = _Thread()
    app = type("App", (), {"consumer": type("C", (), {"_thread": thread})()})()
    reader = _Reader("events", "c.count.state")

    async def scenario() -> None:
        assert await watch.there(reader)
        reader.have = set()
        assert not await watch.there(reader)  # an assignment finds them gone
        watch.leaving = True
        await watch.mind(app, reader)
        assert thread.calls == ["unsubscribe"] and watch.away == {"events"}
        reader.have = {"events"}  # the state topic still missing: stays out
        watch.looked = 0.0
        await watch.mind(app, reader)
        assert thread.calls == ["unsubscribe"]
        await watch.mind(app, reader)  # asked at most once a second
        reader.have = {"events", "c.count.state"}
        watch.looked = 0.0
        await watch.mind(app, reader)
        assert thread.calls == ["unsubscribe", "subscribe"] and thread.subscribed == {"events"}
        assert watch.away is None

    asyncio.run(scenario())
    assert [line.split(" on broker")[0] for line in said] == [
        "node 'count': stream 'events' and state topic 'c.count.state' are not",
        "node 'count': stream 'events' is",  # back, the state topic not yet: still out
        "node 'count': state topic 'c.count.state' is"]
