"""A chained learner's merge waits for its upstream (doa.engines.chain): with the default idle
wait, labels are never released ahead of features the node before it is still computing.

A chained reader sits at the head of its input: the broker has nothing more of it, so its
merge used to take the input as caught up and, after the idle wait (20 ms), release the other
input's records ahead of records the upstream had not written yet. A replay reads the log
whole and merges by timestamp, so a replayed output could differ from the first (the compose
kill test saw 28 of 20,000 outcomes do so). Here every label is in the log before the first
feature, and the broker takes 300 ms to acknowledge each batch of the prep node's features
(one process runs both nodes on one event loop: the learner runs while the prep node waits
for its acknowledgements). The learner must still learn in timestamp order, as River's
``progressive_val_score`` does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from doa.client import Publisher
from doa.engines import EngineSettings, kafka
from doa.engines.launch import prepare
from tests.integration.conftest import ROOT
from tests.integration.helpers import assert_metric_equals_progressive_val_score, drain
from tests.test_learner import phishing
from tests.topologies.chained import build

pytestmark = pytest.mark.broker

BASE = 1_700_000_000_000


def test_a_chained_learner_waits_for_its_busy_upstream(broker: str,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    deliver, assigned = kafka.deliver, kafka.NodeWorker._assigned
    learner_ready = asyncio.Event()

    async def noting(worker: kafka.NodeWorker, partitions: Any) -> None:
        await assigned(worker, partitions)
        if worker.node.name == "model":
            learner_ready.set()

    async def slow_acks(producer: Any, outputs: Any, stats: Any, node: str,
                        *rest: Any) -> list[int]:
        if node == "prep":
            # The chain hands a batch over only to a learner that holds its partition: wait
            # for it (under CPU load its assignment came after all 600 records were written,
            # and nothing was handed over), then take 300 ms over each acknowledgement.
            await asyncio.wait_for(learner_ready.wait(), timeout=60)
            await asyncio.sleep(0.3)
        return await deliver(producer, outputs, stats, node, *rest)

    monkeypatch.setattr(kafka.NodeWorker, "_assigned", noting)
    monkeypatch.setattr(kafka, "deliver", slow_acks)
    rows = phishing()[:600]
    delay = 25
    t = build(1, schemas=ROOT / "tests" / "schemas", metrics_every=len(rows))
    prepare(t, broker)
    with Publisher("labels", broker=broker, topology=t) as pub:  # all labels first
        for i, (_, y) in enumerate(rows):
            pub.send({"id": i, "label": y}, timestamp_ms=BASE + i + delay)
    with Publisher("raw", broker=broker, topology=t) as pub:
        for i, (x, _) in enumerate(rows):
            pub.send({"id": i, **x}, timestamp_ms=BASE + i)
    settings = EngineSettings(max_records=100, chain=1)  # the default idle wait (20 ms)
    assert settings.max_idle_ms < 300
    report = drain(t, broker, 3 * len(rows), settings=settings)
    model = report.stats["model"]
    # The chain was used (how many batches it carried still depends on timing: the learner's
    # consumer may fetch a batch first), and the merge still ordered by event time.
    assert model.dead_letters == 0 and model.handed_in > 0
    assert_metric_equals_progressive_val_score(broker, t, rows, delay)
