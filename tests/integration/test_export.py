"""``doa export`` on a real broker: every registered schema version decodes, Avro types reach
Parquet intact (checked against fastavro's reader of the same bytes), and the range ends
where each partition ended when the export started."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from fastavro import parse_schema, schemaless_reader

from doa.client import Publisher, RecordError
from doa.collect.bounds import Bound
from doa.collect.export import export
from doa.collect.read import Reader
from doa.engines.launch import prepare
from doa.local.embedded import EmbeddedBroker
from doa.topology.topology import Topology
from doa.wire.codec import HEADER_SIZE
from tests.integration.helpers import doa_command, one_line, raw_records
from tests.test_collect import EXPECTED, RICH, as_fastavro, record

pytestmark = pytest.mark.broker

T0 = 1_700_000_000_000
V1 = {"type": "record", "name": "Item", "namespace": "t", "fields": [
    {"name": "id", "type": "long"}, {"name": "name", "type": "string"}]}
V2 = {**V1, "fields": [*V1["fields"],
                       {"name": "price", "type": ["null", "double"], "default": None}]}
TOPOLOGY_FILE = '''
from pathlib import Path

from doa import Topology

topology = Topology("shop", schemas=Path(__file__).parent / "{version}")
topology.stream("items", schema="t.Item")
'''


@pytest.fixture
def tansu() -> Iterator[str]:
    with EmbeddedBroker() as b:
        yield b.address


def shop(tmp_path: Path, version: str, schema: dict[str, Any]) -> Path:
    """A topology file with one stream, ``items``, of this version of ``t.Item``."""
    (tmp_path / version).mkdir(exist_ok=True)
    (tmp_path / version / "item.avsc").write_text(json.dumps(schema))
    path = tmp_path / f"shop_{version}.py"
    path.write_text(TOPOLOGY_FILE.format(version=version))
    return path


def load(path: Path) -> Topology:
    from doa.topology.loader import load_topology

    return load_topology(str(path))


def test_a_stream_with_two_registered_versions_decodes_both(tansu: str, tmp_path: Path) -> None:
    old = load(shop(tmp_path, "v1", V1))
    prepare(old, tansu)  # registers version 1
    with Publisher("items", broker=tansu, topology=old) as pub:
        for i in range(5):
            pub.send({"id": i, "name": f"old {i}"})
    new_file = shop(tmp_path, "v2", V2)
    prepare(load(new_file), tansu)  # registers version 2 (compatible: a defaulted field)
    with Publisher("items", broker=tansu, topology=load(new_file)) as pub:
        for i in range(5, 9):
            pub.send({"id": i, "name": f"new {i}", "price": i / 2})
    raw = raw_records(tansu, "items")
    assert len({v[2:HEADER_SIZE] for v in raw.values()}) == 2, "two writer schemas"

    # a fresh load of the new topology knows only its own schema: the registry gives v1
    report = export(str(new_file), "items", broker=tansu, out=str(tmp_path / "items.parquet"))
    assert (report.records, report.ranges) == (9, {0: (0, 9)})
    rows = pq.read_table(tmp_path / "items.parquet").to_pylist()
    v1, v2 = parse_schema(V1), parse_schema(V2)
    expected = []
    for (_, _), value in sorted(raw.items()):
        writer = v1 if value[2:HEADER_SIZE] == raw[(0, 0)][2:HEADER_SIZE] else v2
        expected.append(schemaless_reader(io.BytesIO(value[HEADER_SIZE:]), writer, v2))
    assert rows == expected
    assert [r["price"] for r in rows] == [None] * 5 + [2.5, 3.0, 3.5, 4.0]

    # a record no registered version wrote stops the export, naming where it is
    with Publisher("items", broker=tansu, topology=load(new_file)) as pub:
        pub.send_raw(b"\xc3\x01" + b"\x00" * 8 + b"junk")
    with pytest.raises(RecordError, match=r"stream 'items' partition 0 offset 9: cannot decode "
                                          r"\(unknown-fingerprint\)"):
        export(str(new_file), "items", broker=tansu, out=str(tmp_path / "again.jsonl"))
    assert not (tmp_path / "again.jsonl").exists()
    cli = doa_command("export", str(new_file), "items", "--broker", tansu, "--out",
                      str(tmp_path / "again.jsonl"))
    assert cli.returncode == 1
    assert one_line(cli.stderr) == (
        "error: stream 'items' partition 0 offset 9: cannot decode (unknown-fingerprint): "
        f"fingerprint {'00' * 8} is not a version of t.Item registered on the broker when "
        "this process last read the registry (written with a schema never deployed? `doa "
        "deploy` registers a topology's schemas); nothing written (--skip-undecodable exports "
        "the other records and counts these)")
    skipped = export(str(new_file), "items", broker=tansu, out=str(tmp_path / "again.jsonl"),
                     on_error="skip")
    assert (skipped.records, skipped.skipped) == (9, 1)


def test_avro_types_reach_parquet_and_the_range_ends_at_the_start(broker: str,
                                                                   tmp_path: Path) -> None:
    """On both brokers: tansu answers ListOffsets with a lower bound, Kafka with the end."""
    import random

    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "rich.avsc").write_text(json.dumps(RICH))
    t = Topology("rich", schemas=tmp_path / "schemas")
    t.stream("rich", schema="t.Rich", key="kind", partitions=2)
    prepare(t, broker)
    rnd = random.Random(11)
    with Publisher("rich", broker=broker, topology=t, linger_ms=20) as pub:
        for _ in range(400):
            pub.send(record(rnd))
    raw = raw_records(broker, "rich")
    counts = {p: sum(1 for q, _ in raw if q == p) for p in (0, 1)}
    report = export(t, "rich", broker=broker, out=str(tmp_path / "rich.parquet"),
                    rows_per_group=128)
    assert report.ranges == {0: (0, counts[0]), 1: (0, counts[1])}
    table = pq.read_table(tmp_path / "rich.parquet")
    assert table.schema.remove_metadata() == EXPECTED
    parsed = parse_schema(RICH)
    want = [schemaless_reader(io.BytesIO(raw[k][HEADER_SIZE:]), parsed) for k in sorted(raw)]
    assert [as_fastavro(r) for r in table.to_pylist()] == want

    # what is written after the range is fixed is left for the next export
    with Reader(broker) as reader:
        ends = reader.ends("rich")
        with Publisher("rich", broker=broker, topology=t) as pub:
            for _ in range(10):
                pub.send(record(rnd))
        read = {p: [m.offset for batch in reader.batches("rich", p, a, b) for m in batch]
                for p, (a, b) in ends.items()}
    assert read == {p: list(range(counts[p])) for p in (0, 1)}


def test_bounds_lineage_columns_and_the_command(tansu: str, tmp_path: Path) -> None:
    path = shop(tmp_path, "v1", V1)
    t = load(path)
    prepare(t, tansu)
    with Publisher("items", broker=tansu, topology=t) as pub:
        ids = [pub.send({"id": i, "name": str(i)}, timestamp_ms=T0 + 10 * i) for i in range(100)]
    out = str(tmp_path / "some.jsonl")
    report = export(t, "items", broker=tansu, out=out, start=Bound(offset=10),
                    end=Bound(offset=20), with_lineage=True)
    rows = [json.loads(line) for line in Path(out).read_text().splitlines()]
    assert report.ranges == {0: (10, 20)}
    assert [r["id"] for r in rows] == list(range(10, 20))
    assert [r["_id"] for r in rows] == [i.hex() for i in ids[10:20]]
    assert all(r["_parents"] == [] and r["_partition"] == 0 for r in rows)
    assert rows[0]["_timestamp"] == "2023-11-14T22:13:20.100000+00:00"

    timed = export(t, "items", broker=tansu, out=out, start=Bound(time_ms=T0 + 500),
                   end=Bound(time_ms=T0 + 700))
    assert [json.loads(line)["id"] for line in Path(out).read_text().splitlines()] == \
        list(range(50, 70))
    assert timed.records == 20

    async def in_a_notebook() -> int:  # a running event loop: the export runs in a thread
        return export(t, "items", broker=tansu, out=out).records

    assert asyncio.run(in_a_notebook()) == 100

    from doa.cli.app import cli

    result = CliRunner().invoke(cli, ["export", str(path), "items", "--broker", tansu,
                                      "--out", str(tmp_path / "some.csv"), "--from", "95"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert "exported 5 records of 'items'" in result.stderr
    assert "offsets read per partition 0: 95..100" in result.stderr
    lines = (tmp_path / "some.csv").read_text().splitlines()
    assert lines == ["id,name"] + [f"{i},{i}" for i in range(95, 100)]
