"""OpenLineage without a broker: when it is on, what the events hold (validated against the
OpenLineage spec's JSON schemas, vendored in tests/data/openlineage), and that a transport that
fails or hangs never reaches the node."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from doa.observe.openlineage import LineageEmitter, avro_fields, configured, namespace_of
from doa.topology.topology import Topology

SPEC = Path(__file__).resolve().parent / "data" / "openlineage"
SCHEMAS = Path(__file__).resolve().parent / "schemas"


def _validator(url: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker
    from referencing import Registry, Resource

    docs = [json.loads(p.read_text()) for p in sorted(SPEC.glob("*.json"))]
    registry: Registry[Any] = Registry().with_resources(
        (d["$id"], Resource.from_contents(d)) for d in docs)
    return Draft202012Validator({"$ref": url}, registry=registry,
                                format_checker=FormatChecker())


def validate_event(event: dict[str, Any]) -> None:
    """Validate a run event against the spec, and each facet against its own schema (the one
    its ``_schemaURL`` names: a facet whose schema is not vendored fails)."""
    _validator(event["schemaURL"]).validate(event)
    facets = [*event["run"].get("facets", {}).values(), *event["job"].get("facets", {}).values()]
    for dataset in [*event.get("inputs", []), *event.get("outputs", [])]:
        facets.extend(dataset.get("facets", {}).values())
    for facet in facets:
        _validator(facet["_schemaURL"]).validate(facet)


def small() -> Topology:
    t = Topology("lin", schemas=SCHEMAS)
    events = t.stream("events", schema="testing.Event", key="key")
    counts = t.stream("counts", schema="testing.Count", key="key")

    @t.node(reads=events, writes=counts, state=dict)
    def count(state: dict[str, int], batch: list[Any]) -> tuple[Any, list[Any]]:
        return state, []

    return t


class Recorder:
    """A client that keeps what it is given (its ``emit`` may fail or hang)."""

    def __init__(self, fail: bool = False, hang: threading.Event | None = None) -> None:
        self.events: list[Any] = []
        self.fail = fail
        self.hang = hang

    def emit(self, event: Any) -> None:
        if self.hang is not None:
            self.hang.wait()
        if self.fail:
            raise ConnectionError("marquez:5000 refused\nsecond line")
        self.events.append(event)

    def close(self, timeout: float = -1) -> bool:
        return True


def as_json(event: Any) -> dict[str, Any]:
    from openlineage.client.serde import Serde

    return dict(json.loads(Serde.to_json(event)))


def test_configured_the_way_the_client_reads_its_configuration(tmp_path: Path) -> None:
    home = str(tmp_path / "home")
    cwd = str(tmp_path)
    assert configured({}, cwd=cwd, home=home) is None
    assert configured({"OPENLINEAGE_URL": "http://m:5000"}, cwd=cwd, home=home) == \
        "OPENLINEAGE_URL"
    assert configured({"OPENLINEAGE__TRANSPORT__TYPE": "file"}, cwd=cwd, home=home) == \
        "OPENLINEAGE__TRANSPORT__TYPE"
    assert configured({"OPENLINEAGE_URL": "http://m:5000", "OPENLINEAGE_DISABLED": "true"},
                      cwd=cwd, home=home) is None
    (tmp_path / "openlineage.yml").write_text("transport:\n  type: console\n")
    assert configured({}, cwd=cwd, home=home) == str(tmp_path / "openlineage.yml")


def test_avro_fields_nested_and_named() -> None:
    schema = {"type": "record", "name": "Outer", "fields": [
        {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
            {"name": "x", "type": "double", "doc": "x"}]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["a"]}},
        {"name": "m", "type": {"type": "map", "values": "long"}}]}
    assert avro_fields(schema) == [
        ("inner", "Inner", None, [("x", "double", "x", [])]),
        ("tags", "array<string>", None, []), ("kind", "Kind", None, []),
        ("m", "map<long>", None, [])]


def test_events_validate_and_name_inputs_outputs_and_schema() -> None:
    t = small()
    client = Recorder()
    emitter = LineageEmitter(t, "b1:9092,b2:9092", [t.nodes["count"]], interval_s=3600,
                             client=client)
    emitter.start()
    emitter.close(ValueError("boom"))
    kinds = [e.eventType.value for e in client.events]
    assert kinds == ["START", "FAIL"]
    start, fail = (as_json(e) for e in client.events)
    for event in (start, fail):
        validate_event(event)
        assert event["job"] == {**event["job"], "namespace": "doa", "name": "lin.count"}
        assert event["run"]["runId"] == emitter.run_ids["count"]
        assert event["job"]["facets"]["jobType"]["processingType"] == "STREAMING"
        assert [(d["namespace"], d["name"]) for d in event["inputs"]] == \
            [("kafka://b1:9092", "events")]
        assert [d["name"] for d in event["outputs"]] == ["counts", "lin.dlq"]
        fields = event["outputs"][0]["facets"]["schema"]["fields"]
        assert [(f["name"], f["type"], f.get("description")) for f in fields] == [
            ("key", "string", None), ("n", "long", "the input's n"),
            ("count", "long", "events of this key so far, this one included"),
            ("total", "long", "sum of n over this key's events so far")]
    assert "errorMessage" not in start["run"]["facets"]
    assert fail["run"]["facets"]["errorMessage"]["message"] == "ValueError: boom"
    assert namespace_of(" k:1 ") == "kafka://k:1"


def test_running_events_come_every_interval() -> None:
    t = small()
    client = Recorder()
    emitter = LineageEmitter(t, "b:9092", [t.nodes["count"]], interval_s=0.05, client=client)
    emitter.start()
    deadline = time.monotonic() + 30
    while sum(e.eventType.value == "RUNNING" for e in client.events) < 2:
        assert time.monotonic() < deadline, [e.eventType for e in client.events]
        time.sleep(0.01)
    emitter.close()
    kinds = [e.eventType.value for e in client.events]
    assert kinds[0] == "START" and kinds[-1] == "COMPLETE"
    assert set(kinds[1:-1]) == {"RUNNING"}


def test_a_failing_transport_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    t = small()
    emitter = LineageEmitter(t, "b:9092", [t.nodes["count"]], interval_s=3600,
                             client=Recorder(fail=True))
    with caplog.at_level(logging.DEBUG, logger="doa.observe.openlineage"):
        emitter.start()
        emitter.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "\n" not in warnings[0].getMessage()
    assert "START event of node 'count' not sent" in warnings[0].getMessage()
    assert emitter.sent == 0


def test_a_hanging_transport_does_not_hold_the_stop() -> None:
    t = small()
    release = threading.Event()
    emitter = LineageEmitter(t, "b:9092", [t.nodes["count"]], interval_s=3600,
                             client=Recorder(hang=release))
    emitter.start()
    began = time.monotonic()
    emitter.close(wait_s=0.2)
    assert time.monotonic() - began < 5  # bounded by wait_s, not by the transport
    release.set()


class SlowFailure(Recorder):
    """A transport that fails after retrying (urllib3: ~1-2 s a send, a long message)."""

    def emit(self, event: Any) -> None:
        time.sleep(0.8)
        raise ConnectionError("HTTPConnectionPool(host='127.0.0.1', port=1): Max retries "
                              "exceeded with url: /api/v1/lineage " + "(Caused by ...) " * 20)


def test_a_transport_known_to_fail_holds_the_stop_one_second_at_most(
        caplog: pytest.LogCaptureFixture) -> None:
    # walkthrough: OPENLINEAGE_URL=http://127.0.0.1:1 made `doa run --for 8` take 13 s, and
    # its warning was 330 characters of urllib3's text
    t = small()
    emitter = LineageEmitter(t, "b:9092", [t.nodes["count"]], interval_s=3600,
                             client=SlowFailure())
    with caplog.at_level(logging.WARNING, logger="doa.observe.openlineage"):
        emitter.start()
        time.sleep(1.2)  # the START send has failed
        began = time.monotonic()
        emitter.close()  # STOP_WAIT_S is 5 s
        took = time.monotonic() - began
    assert took < 2.5, took
    [warning] = [r.getMessage() for r in caplog.records]
    assert len(warning) < 300 and "..." in warning, warning


def test_the_validator_rejects_what_the_spec_forbids() -> None:
    from jsonschema import ValidationError

    t = small()
    client = Recorder()
    emitter = LineageEmitter(t, "b:9092", [t.nodes["count"]], interval_s=3600, client=client)
    emitter.start()
    emitter.close()
    good = as_json(client.events[0])
    validate_event(good)
    bad_run = json.loads(json.dumps(good))
    bad_run["run"]["runId"] = "not-a-uuid"
    bad_facet = json.loads(json.dumps(good))
    del bad_facet["outputs"][0]["facets"]["schema"]["_producer"]
    bad_type = json.loads(json.dumps(good))
    bad_type["job"]["facets"]["jobType"]["processingType"] = 7
    for bad in (bad_run, bad_facet, bad_type):
        with pytest.raises(ValidationError):
            validate_event(bad)
