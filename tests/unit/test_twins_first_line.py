"""One way to say an exception in one line (:func:`doa.errors.first_line`), used by the
subscriber, ``doa dlq --replay``, ``doa ui``'s record reads and the catalog's announcer."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError

from doa import subscriber
from doa.catalog.publish import Announcer
from doa.dlq import ReplayReport, _send_one
from doa.errors import DecodeError, first_line
from doa.events import LINEAGE_HEADER, Event
from doa.lineage.log import Record
from doa.ui.reads import record_dict
from tests.test_dlq_replay_node import Message, letter, siblings

BAD_HEADER = b"\x07" + b"\0" * 40  # an unknown lineage header version


@pytest.mark.parametrize(("exc", "text", "named"), [
    (ValueError("bad\nsecond line"), "bad", "ValueError: bad"),
    (TimeoutError(), "TimeoutError", "TimeoutError"),
    (ValueError("\nafter an empty line"), "ValueError", "ValueError"),
    (KafkaTimeoutError("Timeout after 5.0 secs."), "KafkaTimeoutError: Timeout after 5.0 secs.",
     "KafkaTimeoutError: Timeout after 5.0 secs."),  # the class name once
    (None, "unknown reason", "unknown reason"),
])
def test_first_line_with_and_without_the_class_name(exc: BaseException | None, text: str,
                                                    named: str) -> None:
    assert (first_line(exc), first_line(exc, kind=True)) == (text, named)


def test_the_subscriber_says_a_bad_lineage_header_in_one_line() -> None:
    class Bad:
        topic, partition, offset, key, value, timestamp = "s", 0, 3, None, b"", 0
        headers = ((LINEAGE_HEADER, BAD_HEADER),)

    with pytest.raises(subscriber.RecordError) as raised:
        subscriber.lineage_at(Bad())
    assert "'doa' header: unknown lineage header version 7" in str(raised.value)


def test_a_decode_error_keeps_its_first_line_without_the_stream_prefix() -> None:
    class Codec:
        def decode(self, value: bytes) -> dict[str, Any]:
            raise DecodeError("s", "varint", "bad varint\nat byte 2")

    class M:
        topic, partition, offset, key, value, timestamp = "s", 0, 3, None, b"\xff", 0

    with pytest.raises(subscriber.RecordError) as raised:
        subscriber.decode_at(Codec(), M())  # type: ignore[arg-type]
    assert (raised.value.reason, raised.value.detail) == ("varint", "bad varint")


def test_the_ui_says_why_a_lineage_header_is_unreadable() -> None:
    event = Event({}, stream="s", partition=0, offset=0, timestamp=0,
                  headers=((LINEAGE_HEADER, BAD_HEADER),))
    assert record_dict(Record(event, None))["lineage_error"] == \
        "unknown lineage header version 7"


def test_a_replay_that_cannot_be_sent_says_why_in_one_line() -> None:
    class Refusing:
        def send(self, stream: str, **kw: Any) -> object:
            raise KafkaTimeoutError("Failed to update metadata after 5.0 secs.\nmore")

    report = ReplayReport()
    _send_one(Refusing(), siblings(), None, Message(), letter("count"), "counting.dlq/0@7",
              set(), report)
    assert report.failed == ["not replayed: counting.dlq/0@7 (events/1@4, attempt 1): "
                             "KafkaTimeoutError: Failed to update metadata after 5.0 secs."]


def test_the_announcer_warns_with_the_class_name_once(caplog: pytest.LogCaptureFixture) -> None:
    announcer = Announcer(siblings(), "unused:9092", ["count"], "kafka", interval_s=1.0)
    with caplog.at_level(logging.WARNING, logger="doa.catalog.publish"):
        announcer._warn(KafkaTimeoutError("Timeout after waiting for 5.0 secs."))
        announcer._failing = False
        announcer._warn(OSError("connection refused"))
    said = [r.getMessage() for r in caplog.records]
    assert "(KafkaTimeoutError: Timeout after waiting for 5.0 secs.);" in said[0]
    assert "(OSError: connection refused);" in said[1]
