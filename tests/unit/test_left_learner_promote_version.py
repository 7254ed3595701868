"""A learner's promote command names the challenger version it makes live.

``doa model promote`` on a learner wrote ``{"command": "promote", "version": 0}`` on its
control stream, and the learner promoted whatever challenger ran, whatever version a command
named. A model node's promote names the candidate it makes live and is refused when another
runs (:func:`doa.model.versions.apply`); a learner's now follows the same rule: the version
promoted (0 still means whichever runs, as commands that name none say), another version is
refused as a dead letter naming the learner and both versions, and nothing changes.
"""

from __future__ import annotations

from doa.testing import Harness
from tests.test_learner_challenger import bad, good, phishing, topology

N = 120


def raced(command: dict[str, object]) -> Harness:
    rows = phishing()[:N]
    h = Harness(topology(good(), bad(), None))
    h.publish("features", [{"id": i, **x} for i, (x, _) in enumerate(rows)],
              timestamps=range(N))
    h.publish("labels", [{"id": i, "label": y} for i, (_, y) in enumerate(rows)],
              timestamps=[i + 5 for i in range(N)])
    h.publish("control", [command], timestamps=[N + 10])
    h.run()
    return h


def test_a_promote_naming_the_challenger_makes_it_live() -> None:
    h = raced({"command": "promote", "version": 2, "reason": "by hand"})
    last = h.records("models")[-1]
    assert (last["action"], last["version"], last["from_version"]) == ("promoted", 2, 1)
    assert h.dead_letters == []


def test_a_promote_naming_another_version_is_refused_and_changes_nothing() -> None:
    h = raced({"command": "promote", "version": 7, "reason": "stale"})
    assert [e["action"] for e in h.records("models")] == ["candidate"]
    (letter,) = h.dead_letters
    assert "learner 'model': promote version 7, but challenger version 2 runs" in \
        letter["message"], letter
    state = h.state("model")[0]
    assert state["version"] == 1 and state["challenger"]["version"] == 2
