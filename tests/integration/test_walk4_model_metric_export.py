"""walk4 finding 9: a model node's label metric is on ``/metrics`` of ``doa run --metrics-port``
(``doa_model_metric``, the live version's, and the candidate's when one runs), as
``doa model compare`` shows it. A real ``doa run`` on a real broker, scraped over HTTP."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from doa.engines.launch import prepare
from doa.topology.loader import load_topology
from tests.integration.conftest import doa_process
from tests.integration.helpers import wait_until
from tests.integration.test_metrics import free_port, scrape
from tests.integration.test_model_metric_restart import N, publish, write

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="the metric is read from the node's state; "
                                                  "the broker kind changes nothing; CI time")]


def test_a_model_nodes_live_metric_is_on_metrics(broker: str, tmp_path: Path) -> None:
    path = write(tmp_path, "MAE")
    prepare(load_topology(path), broker)
    port = free_port()
    log_file = tmp_path / "doa.log"
    node = doa_process("run", path, "--broker", broker, "--metrics-port", str(port),
                       env={"DOA_MAX_IDLE_MS": "50", "DOA_LOG_FILE": str(log_file)})
    key = ("doa_model_metric", (("metric", "MAE"), ("node", "price"), ("partition", "0"),
                                ("role", "live"), ("topology", "pricing"), ("version", "1")))
    try:
        publish(broker, path, 0)  # fares are the prices the model says, + 1 on every odd ride
        assert wait_until(lambda: scrape(port).get(key) == pytest.approx(0.5), 90), \
            (sorted(k for k in scrape(port) if "model" in k[0]),
             log_file.read_text() if log_file.exists() else "no log")
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        node.wait(timeout=30)
    assert N == 20  # 20 labels, 10 off by one: MAE 0.5
