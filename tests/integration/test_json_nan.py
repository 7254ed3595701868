"""On a real broker: a NaN or infinite double survives ``doa subscribe`` (and ``doa export
--out x.jsonl``) then ``doa publish --file``: the JSON holds the strings "NaN", "Infinity",
"-Infinity" where the schema has a float or double (was: ``null``, which publish refused for a
non-nullable double), a string field holding "NaN" stays that string, and a null stays null."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.helpers import doa_command, read_stream
from tests.test_publish_nan import comparable

pytestmark = pytest.mark.broker

NAN, INF = math.nan, math.inf
READING = {"type": "record", "name": "Reading", "namespace": "t", "fields": [
    {"name": "key", "type": "string"},
    {"name": "x", "type": "double"},
    {"name": "f", "type": "float"},
    {"name": "maybe", "type": ["null", "double"], "default": None},
    {"name": "xs", "type": {"type": "array", "items": "double"}},
    {"name": "m", "type": {"type": "map", "values": ["null", "float"]}},
    {"name": "inner", "type": {"type": "record", "name": "Inner", "fields": [
        {"name": "v", "type": "double"}]}},
    {"name": "label", "type": "string"}]}
TOPOLOGY_FILE = '''
from pathlib import Path

from doa import Topology

topology = Topology("sensors", schemas=Path(__file__).parent / "schemas")
for name in ("readings", "copy", "exported"):
    topology.stream(name, schema="t.Reading")
'''
RECORDS: list[dict[str, Any]] = [
    {"key": "a", "x": NAN, "f": INF, "maybe": -INF, "xs": [1.5, NAN, INF, -INF],
     "m": {"n": NAN, "z": None, "i": -INF}, "inner": {"v": INF}, "label": "NaN"},
    {"key": "b", "x": -INF, "f": NAN, "maybe": NAN, "xs": [], "m": {},
     "inner": {"v": NAN}, "label": "-Infinity"},
    {"key": "c", "x": 2.5, "f": -0.5, "maybe": None, "xs": [0.0], "m": {"one": 1.0},
     "inner": {"v": -1e300}, "label": "Infinity"},
]


def sensors(tmp_path: Path) -> tuple[Path, Topology]:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "reading.avsc").write_text(json.dumps(READING))
    path = tmp_path / "sensors.py"
    path.write_text(TOPOLOGY_FILE)
    return path, load_topology(str(path))


def records_of(broker: str, topology: Topology, stream: str) -> list[Any]:
    events = read_stream(broker, topology, stream, expected=len(RECORDS))
    return sorted((comparable(dict(e)) for e in events), key=lambda r: str(r["key"]))


@pytest.mark.brokers("tansu", reason="the JSON form is the CLI's, not the broker's: one kind "
                                     "is enough")
def test_nan_and_infinities_round_trip_through_subscribe_export_and_publish(
        broker: str, tmp_path: Path) -> None:
    path, topology = sensors(tmp_path)
    prepare(topology, broker)
    with Publisher("readings", broker=broker, topology=topology) as pub:
        for record in RECORDS:
            pub.send(record)
    want = [comparable(r) for r in RECORDS]

    shown = doa_command("subscribe", "readings", "--broker", broker, "--from-beginning",
                        "--limit", str(len(RECORDS)))
    assert shown.returncode == 0, shown.stderr.decode()
    lines = shown.stdout.decode().splitlines()
    first = json.loads(lines[0])  # strict JSON: Python's reader takes it without NaN tokens
    assert first["x"] == "NaN" and first["f"] == "Infinity" and first["maybe"] == "-Infinity"
    assert first["xs"] == [1.5, "NaN", "Infinity", "-Infinity"]
    assert first["m"] == {"n": "NaN", "z": None, "i": "-Infinity"}
    assert first["inner"] == {"v": "Infinity"} and first["label"] == "NaN"
    assert json.loads(lines[2])["maybe"] is None  # a null is still null
    subscribed = tmp_path / "subscribed.jsonl"
    subscribed.write_bytes(shown.stdout)

    published = doa_command("publish", "copy", "--broker", broker, "--file", str(subscribed))
    assert published.returncode == 0, published.stderr.decode()
    assert records_of(broker, topology, "copy") == want

    exported = tmp_path / "exported.jsonl"
    done = doa_command("export", str(path), "readings", "--broker", broker,
                       "--out", str(exported))
    assert done.returncode == 0, done.stderr.decode()
    assert sorted(exported.read_text().splitlines()) == sorted(lines)
    again = doa_command("publish", "exported", "--broker", broker, "--file", str(exported))
    assert again.returncode == 0, again.stderr.decode()
    assert records_of(broker, topology, "exported") == want


@pytest.mark.brokers("tansu", reason="the check comes before anything is sent: one kind is "
                                     "enough")
def test_a_nan_string_in_a_string_field_stays_a_string_and_null_is_not_nan(
        broker: str, tmp_path: Path) -> None:
    _, topology = sensors(tmp_path)
    prepare(topology, broker)
    line = {"key": "k", "x": 1.0, "f": 1.0, "xs": [], "m": {}, "inner": {"v": 0.0},
            "label": "NaN"}
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({**line, "x": None}) + "\n"
                   + json.dumps({**line, "maybe": "nan"}) + "\n")
    refused = doa_command("publish", "copy", "--broker", broker, "--file", str(bad))
    assert refused.returncode == 1
    err = refused.stderr.decode()
    assert "2 bad lines; nothing was published" in err
    assert "line 1: stream 'copy': field Reading.x expected double, got NoneType None" in err
    assert ("line 2: stream 'copy': field Reading.maybe expected one of [null, double], got "
            "str 'nan'") in err  # only the three forms are floats

    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({**line, "maybe": "NaN"}) + "\n")
    sent = doa_command("publish", "copy", "--broker", broker, "--file", str(good))
    assert sent.returncode == 0, sent.stderr.decode()
    (got,) = read_stream(broker, topology, "copy", expected=1)
    assert got["label"] == "NaN" and math.isnan(got["maybe"])
