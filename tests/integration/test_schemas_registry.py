"""Schema versions registered on the broker: BACKWARD changes go in, breaking ones are refused.

Each test builds versions of one topology in ``tmp_path`` (a topology file and its ``.avsc``
files per version): the stream ``things`` has schema ``reg.Thing`` v1 (id, value); v2 adds a
field ``color``, with a default (compatible) or without one (breaking).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from doa.client import Publisher
from doa.cluster.registry import read_registry
from doa.engines.launch import prepare
from doa.errors import CompatibilityError
from doa.events import lineage_of
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from tests.integration.helpers import doa_command, doa_env, drain, read_stream

pytestmark = pytest.mark.broker

THING_V1 = [{"name": "id", "type": "string"}, {"name": "value", "type": "long"}]
COLOR_NO_DEFAULT = {"name": "color", "type": "string"}
COLOR_DEFAULT = {"name": "color", "type": "string", "default": "none"}
SEEN = [{"name": "id", "type": "string"}, {"name": "value", "type": "long"},
        {"name": "color", "type": "string"}]

TOPOLOGY = '''
from doa import Topology

topology = Topology("registry", schemas="schemas")
things = topology.stream("things", schema="reg.Thing", key="id", partitions=2)
seen = topology.stream("seen", schema="reg.Seen", key="id", partitions=2)


@topology.node(reads=things, writes=seen)
def look(state, batch):
    return state, [(e, {"id": e["id"], "value": e["value"], "color": e.get("color", "?")})
                   for e in batch]
'''


def _version(root: Path, name: str, thing_fields: list[dict[str, object]]) -> str:
    """Write one version of the topology under ``root/name``; return its file."""
    d = root / name
    (d / "schemas").mkdir(parents=True)
    for record, fields in (("Thing", thing_fields), ("Seen", SEEN)):
        schema = {"type": "record", "name": record, "namespace": "reg", "fields": fields}
        (d / "schemas" / f"{record.lower()}.avsc").write_text(json.dumps(schema, indent=1))
    (d / "topology.py").write_text(TOPOLOGY)
    return str(d / "topology.py")


def _load(root: Path, name: str, thing_fields: list[dict[str, object]]) -> Topology:
    return load_topology(_version(root, name, thing_fields))


def test_prepare_registers_version_1(broker: str, tmp_path: Path) -> None:
    v1 = _load(tmp_path, "v1", THING_V1)
    assert set(prepare(v1, broker)) >= {"things", "seen"}
    registry = read_registry(broker)
    assert [(r.version, r.schema.fingerprint) for r in registry["things"]] == [
        (1, v1.codec("things").schema.fingerprint)]
    assert prepare(v1, broker) == [], "registering the same schemas again adds no version"
    assert len(read_registry(broker)["things"]) == 1


def test_a_new_field_without_default_is_refused_naming_stream_and_field(
        broker: str, tmp_path: Path) -> None:
    prepare(_load(tmp_path, "v1", THING_V1), broker)
    v2 = _load(tmp_path, "v2", [*THING_V1, COLOR_NO_DEFAULT])
    with pytest.raises(CompatibilityError) as caught:
        prepare(v2, broker)
    assert caught.value.stream == "things"
    assert "'things'" in str(caught.value) and "color" in str(caught.value), str(caught.value)
    assert [r.version for r in read_registry(broker)["things"]] == [1], "nothing registered"

    done = doa_command("run", _version(tmp_path, "v2-run", [*THING_V1, COLOR_NO_DEFAULT]),
                       "--broker", broker, "--for", "5", "-q",
                       env=doa_env(), timeout=60)
    assert done.returncode == 1, done.stdout.decode() + done.stderr.decode()
    text = done.stderr.decode()
    assert "Traceback" not in text, text
    errors = [line for line in text.strip().splitlines() if line.startswith("error")]
    assert len(errors) == 1 and text.strip().endswith(errors[0]), text
    assert "color" in errors[0] and "things" in errors[0], errors[0]
    assert [r.version for r in read_registry(broker)["things"]] == [1]


def test_a_compatible_version_2_is_registered_and_reads_version_1_payloads(
        broker: str, tmp_path: Path) -> None:
    v1 = _load(tmp_path, "v1", THING_V1)
    prepare(v1, broker)
    with Publisher("things", broker=broker, topology=v1) as pub:
        old_ids = {pub.send({"id": f"t{i % 7}", "value": i}): i for i in range(40)}

    v2 = _load(tmp_path, "v2", [*THING_V1, COLOR_DEFAULT])
    assert prepare(v2, broker) == ["things"]
    registry = read_registry(broker)
    assert [(r.version, r.schema.fingerprint) for r in registry["things"]] == [
        (1, v1.codec("things").schema.fingerprint), (2, v2.codec("things").schema.fingerprint)]
    assert [r.version for r in registry["seen"]] == [1]

    with Publisher("things", broker=broker, topology=v2) as pub:
        new_ids = {pub.send({"id": f"t{i % 7}", "value": i, "color": "red"}): i
                   for i in range(40, 50)}
    report = drain(v2, broker, 50, timeout=40)
    assert report.stats["look"].dead_letters == 0
    assert report.stats["look"].records_out == 50

    seen = read_stream(broker, v2, "seen", 50, idle_s=2)
    by_parent = {lineage_of(e.headers).parents[0]: e for e in seen}  # type: ignore[union-attr]
    assert set(by_parent) == set(old_ids) | set(new_ids)
    for parent, i in old_ids.items():
        assert dict(by_parent[parent]) == {"id": f"t{i % 7}", "value": i, "color": "none"}
    for parent, i in new_ids.items():
        assert dict(by_parent[parent]) == {"id": f"t{i % 7}", "value": i, "color": "red"}


def test_doa_check_broker_checks_against_registered_versions_without_running(
        broker: str, tmp_path: Path) -> None:
    prepare(_load(tmp_path, "v1", THING_V1), broker)
    breaking = doa_command("check", _version(tmp_path, "v2", [*THING_V1, COLOR_NO_DEFAULT]),
                           "--broker", broker, env=doa_env(), timeout=60)
    assert breaking.returncode == 1
    assert "color" in breaking.stderr.decode() and "things" in breaking.stderr.decode()
    fine = doa_command("check", _version(tmp_path, "v2ok", [*THING_V1, COLOR_DEFAULT]),
                       "--broker", broker, env=doa_env(), timeout=60)
    assert fine.returncode == 0, fine.stderr.decode()
    assert "would register schema version 2" in fine.stdout.decode()
    assert [r.version for r in read_registry(broker)["things"]] == [1], "check registers nothing"


# -- transitive compatibility: v1 {id, n: long} -> v2 {id} -> v3 {id, n: string = ""} ----------

EVOLVING = '''
from doa import Topology

topology = Topology("evolving", schemas="schemas")
things = topology.stream("things", schema="reg.Thing", key="id"{level})


@topology.node(reads=things)
def count(state, batch):
    state["n"] = state.get("n", 0) + len(batch)
    return state, []
'''
N_V1 = [{"name": "id", "type": "string"}, {"name": "n", "type": "long"}]
N_V2 = [{"name": "id", "type": "string"}]
N_V3 = [{"name": "id", "type": "string"}, {"name": "n", "type": "string", "default": ""}]


def _evolving(root: Path, name: str, fields: list[dict[str, object]],
              level: str | None = None) -> str:
    d = root / name
    (d / "schemas").mkdir(parents=True)
    schema = {"type": "record", "name": "Thing", "namespace": "reg", "fields": fields}
    (d / "schemas" / "thing.avsc").write_text(json.dumps(schema))
    (d / "topology.py").write_text(EVOLVING.replace(
        "{level}", f", compatibility={level!r}" if level else ""))
    return str(d / "topology.py")


def _v1_then_v2(broker: str, root: Path) -> None:
    """Register v1 and v2, with one payload of each in the log."""
    v1 = load_topology(_evolving(root, "v1", N_V1))
    prepare(v1, broker)
    with Publisher("things", broker=broker, topology=v1) as pub:
        pub.send({"id": "a", "n": 5})
    v2 = load_topology(_evolving(root, "v2", N_V2))
    assert prepare(v2, broker) == ["things"], "v2 (a field removed) is backward-compatible"
    with Publisher("things", broker=broker, topology=v2) as pub:
        pub.send({"id": "b"})


def test_v3_is_refused_naming_version_1_and_field_n(broker: str, tmp_path: Path) -> None:
    _v1_then_v2(broker, tmp_path)
    v3 = _evolving(tmp_path, "v3", N_V3)
    with pytest.raises(CompatibilityError) as caught:
        prepare(load_topology(v3), broker)
    assert caught.value.stream == "things" and caught.value.level == "BACKWARD_TRANSITIVE"
    (problem,) = caught.value.problems
    assert problem.startswith("version 1: field 'Thing.n': "), problem
    assert [r.version for r in read_registry(broker)["things"]] == [1, 2], "nothing registered"

    checked = doa_command("check", v3, "--broker", broker, env=doa_env(), timeout=60)
    assert checked.returncode == 1, checked.stdout.decode()
    assert "version 1: field 'Thing.n'" in checked.stderr.decode()
    done = doa_command("run", v3, "--broker", broker, "--for", "5", "-q", env=doa_env(),
                       timeout=60)
    text = done.stderr.decode()
    assert done.returncode == 1, done.stdout.decode() + text
    errors = [line for line in text.strip().splitlines() if line.startswith("error")]
    assert len(errors) == 1 and "Traceback" not in text, text
    assert "'things'" in errors[0] and "version 1: field 'Thing.n'" in errors[0], errors[0]
    assert [r.version for r in read_registry(broker)["things"]] == [1, 2]


@pytest.mark.parametrize("level", ["BACKWARD", "NONE"])
def test_a_stream_level_that_allows_v3_registers_it(broker: str, tmp_path: Path,
                                                    level: str) -> None:
    _v1_then_v2(broker, tmp_path)
    v3 = load_topology(_evolving(tmp_path, "v3", N_V3, level))
    assert prepare(v3, broker) == ["things"]
    assert [r.version for r in read_registry(broker)["things"]] == [1, 2, 3]
    # what the transitive default protects from: the v1 payload no longer decodes with v3
    report = drain(v3, broker, 2, timeout=40)
    assert report.stats["count"].dead_letters == 1
    (letter,) = read_stream(broker, v3, v3.dead_letters.name, 1, idle_s=2)
    assert letter["stream"] == "things" and letter["offset"] == 0, dict(letter)


@pytest.mark.brokers("tansu", reason="the registry is doa's own topic, read alike on both; "
                                     "CI time")
def test_going_back_to_a_version_that_cannot_read_a_later_one_is_refused(
        broker: str, tmp_path: Path) -> None:
    """Walk 6: a schema file reverted to version 1 after version 2 (``value`` a double) was
    registered passed check, deploy and run, and the node made version 2's records dead
    letters. Going back is still fine when version 1 reads version 2's records (an added
    field with a default: the reader skips it)."""
    double = [THING_V1[0], {"name": "value", "type": "double"}]
    v1 = _load(tmp_path, "v1", THING_V1)
    prepare(v1, broker)
    assert prepare(_load(tmp_path, "v2", double), broker) == ["things"]
    with pytest.raises(CompatibilityError) as caught:
        prepare(_load(tmp_path, "back", THING_V1), broker)
    assert str(caught.value).startswith(
        "stream 'things': its schema is registered version 1, older than version 2, whose "
        "records it cannot read: version 2: "), str(caught.value)
    assert "value" in str(caught.value) and "compatibility='NONE'" in str(caught.value)
    checked = doa_command("check", _version(tmp_path, "back-check", THING_V1), "--broker",
                          broker, env=doa_env(), timeout=60)
    err = checked.stderr.decode()
    assert checked.returncode == 1 and "older than version 2" in err and "Traceback" not in err
    assert [r.version for r in read_registry(broker)["things"]] == [1, 2]

    # version 3 adds a field with a default: version 2 reads its records (skips the field),
    # version 1 still reads neither
    assert prepare(_load(tmp_path, "v3", [*double, COLOR_DEFAULT]), broker) == ["things"]
    assert prepare(_load(tmp_path, "back-to-2", double), broker) == []
    with pytest.raises(CompatibilityError) as caught:
        prepare(_load(tmp_path, "back-to-1", THING_V1), broker)
    assert "older than versions 2, 3, whose" in str(caught.value), str(caught.value)
    assert [r.version for r in read_registry(broker)["things"]] == [1, 2, 3]
