"""Records a reader meets in a real log besides good ones, on both brokers: a malformed
``doa`` lineage header, a tombstone, and payloads of an older registered schema version read
through a topology of the newer one. ``doa subscribe``, ``doa export`` and the ui's reads
each go on past the first two (or refuse in one line naming the record) and decode the third.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from click.testing import CliRunner

from doa.client import Publisher, RecordError, Subscriber
from doa.collect.export import export
from doa.engines.launch import prepare
from doa.lineage.log import Log
from doa.topology.loader import load_topology
from doa.topology.topology import Topology
from doa.ui import reads
from doa.ui.app import make_app
from tests.integration.helpers import doa_command, doa_env
from tests.integration.test_export import V1, V2, shop

pytestmark = pytest.mark.broker

def send_raw(broker: str, value: bytes | None, headers: list[tuple[str, bytes]]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=broker)
    try:
        producer.send("items", key=b"k", value=value, headers=headers, partition=0).get(10)
    finally:
        producer.close()


def three_and_a_bad_header(broker: str, tmp_path: Path) -> tuple[str, Topology]:
    """``items`` holding 3 good records, then at offset 3 a good value under a ``doa`` header
    of 7 bytes of garbage."""
    path = str(shop(tmp_path, "v1", V1))
    t = load_topology(path)
    prepare(t, broker)
    with Publisher("items", broker=broker, topology=t) as pub:
        for i in range(3):
            pub.send({"id": i, "name": str(i)})
    send_raw(broker, t.codec("items").encode({"id": 3, "name": "3"}), [("doa", b"garbage")])
    return path, t


def test_a_malformed_lineage_header_is_an_undecodable_record(broker: str,
                                                             tmp_path: Path) -> None:
    path, t = three_and_a_bad_header(broker, tmp_path)
    env = doa_env(DOA_BROKER=broker)
    where = "stream 'items' partition 0 offset 3: cannot decode (bad-lineage): 'doa' header: "

    plain = doa_command("subscribe", "items", "--from-beginning", "--idle", "2", env=env)
    assert plain.returncode == 0, plain.stderr
    assert [json.loads(line)["id"] for line in plain.stdout.splitlines()] == [0, 1, 2]
    stderr = plain.stderr.decode()
    assert f"undecodable: {where}truncated lineage header (7 bytes)" in stderr
    assert "1 undecodable record (not printed on stdout)" in stderr

    meta = doa_command("subscribe", "items", "--from-beginning", "--idle", "2", "--meta",
                       env=env)
    assert meta.returncode == 0, meta.stderr
    last = json.loads(meta.stdout.splitlines()[-1])
    assert (last["offset"], last["id"], last["node"], last["record"]) == \
        (3, None, None, {"id": 3, "name": "3"})
    assert last["lineage_error"].startswith("'doa' header: truncated lineage header")
    assert "1 with an unreadable lineage header on stdout" in meta.stderr.decode()

    with Subscriber(["items"], broker=broker, from_beginning=True, idle_timeout_s=2,
                    on_error="raise") as sub, pytest.raises(RecordError, match=re.escape(where)):
        list(sub)

    # export: the header is read only for the lineage columns; then as an undecodable value
    assert export(t, "items", broker=broker, out=str(tmp_path / "a.jsonl")).records == 4
    with pytest.raises(RecordError, match=re.escape(where)):
        export(t, "items", broker=broker, out=str(tmp_path / "b.jsonl"), with_lineage=True)
    assert not (tmp_path / "b.jsonl").exists()
    skipped = export(t, "items", broker=broker, out=str(tmp_path / "b.jsonl"),
                     with_lineage=True, on_error="skip")
    assert (skipped.records, skipped.skipped) == (3, 1)
    assert [(e.offset, e.reason) for e in skipped.first_skipped] == [(3, "bad-lineage")]

    from doa.cli.app import cli

    result = CliRunner().invoke(cli, ["export", path, "items", "--broker", broker, "--out",
                                      str(tmp_path / "c.jsonl"), "--with-lineage",
                                      "--skip-undecodable"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert " ".join(result.stderr.split()).endswith(
        "warning: 1 record could not be decoded and was skipped (first: items:0:3 "
        f"bad-lineage); to see each (one line on stderr): doa subscribe items -t {path} "
        "--from-beginning --idle 2 >/dev/null")

    # the ui shows the record with its lineage unreadable, and traces it without an error
    shown = {r["offset"]: r for r in reads.tail(broker, "items", 10, [t])}
    assert shown[3]["value"] == {"id": 3, "name": "3"}
    assert shown[3]["lineage_error"].startswith("truncated lineage header (7 bytes)")
    assert "lineage_error" not in shown[2]
    traced = reads.lineage(broker, "items:0:3", [t])
    assert traced["lineage_error"].startswith("truncated lineage header")
    assert traced["trace"]["record"]["record"] == {"id": 3, "name": "3"}


# a record of a schema without fields decodes to {}, as the log read a tombstone before it said
NO_FIELDS = {**V1, "fields": []}


@pytest.mark.parametrize("schema", [V1, NO_FIELDS], ids=["fields", "no-fields"])
def test_a_tombstone_is_named_as_one(broker: str, tmp_path: Path, schema: dict[str, Any]
                                     ) -> None:
    t = load_topology(str(shop(tmp_path, "v1", schema)))
    prepare(t, broker)
    with Publisher("items", broker=broker, topology=t) as pub:
        for i in range(4):
            pub.send({"id": i, "name": str(i)} if schema["fields"] else {})
    send_raw(broker, None, [])  # offset 4
    with Log(broker, t) as log:
        assert [(r.tombstone, r.error) for r in log.scan("items", 0, 0)] == [
            (False, None)] * 4 + [(True, None)]

    sub = doa_command("subscribe", "items", "--from-beginning", "--idle", "2",
                      env=doa_env(DOA_BROKER=broker))
    assert "offset 4: cannot decode (tombstone): the record has no value" in sub.stderr.decode()
    with pytest.raises(RecordError, match=r"offset 4: cannot decode \(tombstone\): the record "
                                          r"has no value$"):
        export(t, "items", broker=broker, out=str(tmp_path / "a.jsonl"))

    async def ask(client: TestClient[Any, Any]) -> list[tuple[int, Any]]:
        out = []
        for query in ("/api/records?stream=items&n=10", "/api/lineage?event=items:0:4"):
            r = await client.get(query)
            out.append((r.status, await r.json()))
        return out

    async def main() -> list[tuple[int, Any]]:
        app = make_app(broker, [t], collect=lambda: {"streams": [], "nodes": []})
        async with TestClient(TestServer(app)) as client:
            return await ask(client)

    (s1, records), (s2, _) = asyncio.run(main())
    assert (s1, s2) == (200, 200)
    tombstone = next(r for r in records["records"] if r["offset"] == 4)
    assert tombstone["value"] is None and tombstone["note"].startswith("tombstone")
    assert all(r["value"] is not None and "note" not in r
               for r in records["records"] if r["offset"] != 4)


def test_a_topology_of_the_new_version_reads_records_of_the_old(broker: str,
                                                                tmp_path: Path) -> None:
    old = load_topology(str(shop(tmp_path, "v1", V1)))
    prepare(old, broker)  # registers version 1
    with Publisher("items", broker=broker, topology=old) as pub:
        for i in range(3):
            pub.send({"id": i, "name": f"old {i}"})
    new_file = str(shop(tmp_path, "v2", V2))
    prepare(load_topology(new_file), broker)  # version 2: a defaulted field
    with Publisher("items", broker=broker, topology=load_topology(new_file)) as pub:
        pub.send({"id": 3, "name": "new 3", "price": 1.5})
    expected = [{"id": i, "name": f"old {i}", "price": None} for i in range(3)] + \
        [{"id": 3, "name": "new 3", "price": 1.5}]

    # a fresh load of the new topology knows only its own schema: the registry gives v1
    with Subscriber(["items"], broker=broker, topology=load_topology(new_file),
                    from_beginning=True, idle_timeout_s=2) as sub:
        assert [dict(e) for e in sub] == expected
    cli = doa_command("subscribe", "items", "-t", new_file, "--from-beginning", "--idle", "2",
                      env=doa_env(DOA_BROKER=broker))
    assert [json.loads(line) for line in cli.stdout.splitlines()] == expected, cli.stderr
    assert b"undecodable" not in cli.stderr

    shown = reads.tail(broker, "items", 10, [load_topology(new_file)])
    assert [r.get("error") for r in shown] == [None] * 4
    assert sorted((r["value"] for r in shown), key=lambda v: v["id"]) == expected


def test_skipped_records_are_named_with_where_to_see_each(broker: str, tmp_path: Path) -> None:
    path = str(shop(tmp_path, "v1", V1))
    t = load_topology(path)
    prepare(t, broker)
    with Publisher("items", broker=broker, topology=t) as pub:
        pub.send({"id": 0, "name": "0"})
        for _ in range(4):
            pub.send_raw(b"junk")
    from doa.cli.app import cli

    result = CliRunner().invoke(cli, ["export", path, "items", "--broker", broker, "--out",
                                      str(tmp_path / "a.csv"), "--skip-undecodable"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert " ".join(result.stderr.split()).endswith(
        "warning: 4 records could not be decoded and were skipped (first: items:0:1 "
        "bad-marker, items:0:2 bad-marker, items:0:3 bad-marker); to see each (one line on "
        f"stderr): doa subscribe items -t {path} --from-beginning --idle 2 >/dev/null")
    sub = doa_command("subscribe", "items", "-t", path, "--from-beginning", "--idle", "2",
                      env=doa_env(DOA_BROKER=broker))
    assert sub.stderr.decode().count("cannot decode (bad-marker)") == 4
