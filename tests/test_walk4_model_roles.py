"""walk4 finding 2: the versions ``doa model list`` says are live and candidate agree with the
node's own, after its Promote policy promoted or rejected a candidate (its ``promoted`` and
``rejected`` events are on its models stream, not on its versions stream), and after a version
published later. The node's state in the in-memory harness is the reference."""

from __future__ import annotations

import pickle

import pytest

from doa.model.artifacts import chunk_records
from doa.model.kept import model_roles
from doa.model.labels import Promote
from doa.testing import Harness
from tests.test_model_challenger import N, Threshold, race


def roles(h: Harness) -> dict[str, int | None]:
    found = model_roles(h.records("m.versions"), 1, 5, 1, h.records("events"))[0]
    return {"live": found["live"], "candidate": found["candidate"]}


def node(h: Harness) -> dict[str, int | None]:
    state = h.state("m")[0]
    return {"live": state["version"], "candidate": state["candidate"]}


def publish(h: Harness, version: int, candidate: bool) -> None:
    h.publish("m.versions", chunk_records("m", version, pickle.dumps(Threshold(60.0)),
                                          fmt="sklearn", chunk_bytes=10_000, publisher="",
                                          published=0, key=None, candidate=candidate),
              timestamps=[N])
    h.run()


@pytest.mark.parametrize(("t", "after"), [(50.0, {"live": 2, "candidate": None}),
                                          (95.0, {"live": 1, "candidate": None})])
def test_model_roles_follow_the_policy_then_a_later_publish(
        t: float, after: dict[str, int | None]) -> None:
    h = race(Threshold(t), Promote(margin=0.0, after_labels=100))
    assert roles(h) == node(h) == after  # promoted (better) or rejected (worse) by the policy
    publish(h, 3, candidate=False)
    assert roles(h) == node(h) == {"live": 3, "candidate": None}
    publish(h, 4, candidate=True)
    assert roles(h) == node(h) == {"live": 3, "candidate": 4}
