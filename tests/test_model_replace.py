"""A model node runs one candidate at a time: a second candidate replaces the first, and the
node says so on its models stream; ``doa model rollback`` and ``promote`` commands say who
sent them and when, as a publication does, and ``doa model list`` shows it.
"""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from river import metrics

from doa import Topology
from doa.events import Event
from doa.model import versions
from doa.model.artifacts import chunk_records
from doa.model.labels import Labels
from doa.testing import Harness
from tests.test_model_versions import SCHEMAS, Scaled, publish, rows, scores

N = 300


def topology() -> Topology:
    t = Topology("replace", schemas=SCHEMAS)
    t.stream("pages", schema="testing.Phish")
    t.stream("truth", schema="testing.PhishLabel")
    for name, schema in (("scores", "doa.Prediction"), ("shadow", "doa.Prediction"),
                         ("events", "doa.ModelEvent"), ("metrics", "doa.Metric")):
        t.stream(name, schema=schema)
    t.model("m", reads="pages", writes="scores", model=Scaled(1.0),
            features=["age_of_domain", "https"], join="id", shadow="shadow", models="events",
            labels=Labels("truth", metric=metrics.Accuracy(), metrics="metrics", every=50))
    return t


def test_a_second_candidate_replaces_the_first_and_the_node_says_so() -> None:
    h = Harness(topology(), batch_size=16)
    data = rows(N)
    h.publish("pages", data, timestamps=range(N))
    h.publish("truth", [{"id": r["id"], "label": r["age_of_domain"] > 50} for r in data],
              timestamps=range(N))
    publish(h, 2, Scaled(2.0), at=100, candidate=True)
    publish(h, 3, Scaled(3.0), at=200, candidate=True)
    h.run()
    assert [(e["action"], e["version"], e["from_version"], e["reason"])
            for e in h.records("events")] == [
        ("candidate", 2, 1, "published by test@here"),
        ("rejected", 2, 1, "replaced by candidate version 3"),
        ("candidate", 3, 1, "published by test@here")]
    assert [e.timestamp for e in h.records("events")] == [100, 200, 200]
    shadow = {j: r["model_version"] for j, r in scores(h, "shadow").items()}
    assert shadow == {i: 2 if i < 200 else 3 for i in range(100, N)}
    assert {r["model_version"] for r in scores(h).values()} == {1}
    [state] = h.state("m").values()
    assert (state["version"], state["candidate"], state["race"]) == (1, 3, (1, 3))


def test_promote_and_rollback_commands_carry_who_and_when() -> None:
    record = versions.command("m", "rollback", 1, "bad", publisher="ann@host",
                              published=1_700_000_000_000)
    assert (record["publisher"], record["published"]) == ("ann@host", 1_700_000_000_000)
    state = versions.initial(1, "sklearn")
    assert [(e["action"], e["version"]) for e in versions.apply(
        state, record, node="m", key=None, keep=3)] == [("rollback", 1)]


def test_model_list_rows_show_the_version_publisher_and_time_of_commands() -> None:
    from doa.cli.model import _version_row

    def row(action: str, version: int, publisher: str = "ann@host",
            published: int = 1_700_000_000_000) -> tuple[str, ...]:
        return _version_row({**versions.command("m", action, version, "why",
                                                publisher=publisher, published=published)})

    assert row("rollback", 2)[:1] + row("rollback", 2)[6:] == (
        "2", "ann@host", "2023-11-14 22:13:20Z", "why")
    assert row("promote", 0)[:1] + row("promote", 0)[6:8] == (
        "-", "ann@host", "2023-11-14 22:13:20Z")
    assert row("promote", 0, "", 0)[6:8] == ("-", "-")  # records written before doa said


def test_a_promote_names_the_candidate_and_one_naming_another_changes_nothing() -> None:
    from doa.model.kept import model_roles

    state = versions.initial(1, "sklearn")
    published = [publication(2, Scaled(2.0)), publication(3, Scaled(3.0))]
    for record in published:
        versions.apply(state, record, node="m", key=None, keep=3)
    wrong, right = versions.command("m", "promote", 2), versions.command("m", "promote", 3)
    with pytest.raises(versions.VersionError,
                       match="model node 'm': promote version 2, but candidate version 3 runs"):
        versions.apply(state, wrong, node="m", key=None, keep=3)
    assert (state["version"], state["candidate"]) == (1, 3)
    # doa model promote and list read the versions stream with the node's own rules
    log = [Event(r, stream="m.versions", partition=0, offset=i, timestamp=0)
           for i, r in enumerate([*published, wrong])]
    assert model_roles(log, 1, 3, 1)[0]["candidate"] == 3
    assert [e["action"] for e in versions.apply(state, right, node="m", key=None,
                                                keep=3)] == ["promoted"]
    log.append(Event(right, stream="m.versions", partition=0, offset=3, timestamp=0))
    assert model_roles(log, 1, 3, 1)[0] == {"live": 3, "candidate": None, "kept": [1, 2, 3]}


def publication(version: int, model: Scaled) -> dict[str, Any]:
    """A candidate version's one chunk, as ``doa model publish --candidate`` sends it."""
    [record] = chunk_records("m", version, pickle.dumps(model), fmt="sklearn",
                             chunk_bytes=1 << 20, publisher="", published=0, key=None,
                             candidate=True)
    return record
