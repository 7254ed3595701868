"""``doa model list`` of a model node says which version is live: the topology's model
(version 1, the file) when nothing is published, the published one after ``publish``."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from tests.integration.helpers import doa_command
from tests.integration.test_model_versions import setup
from tests.test_model_versions import Scaled

pytestmark = [pytest.mark.broker,
              pytest.mark.brokers("tansu", reason="CLI output only; CI time")]


def lines(stdout: bytes) -> list[str]:
    return [" ".join(line.replace("│", " ").split()) for line in stdout.decode().splitlines()]


def test_model_list_says_the_topologys_model_is_live_then_the_published_one(
        broker: str, tmp_path: Path) -> None:
    path, _ = setup(tmp_path, broker)
    listed = doa_command("model", "list", path, "m", "--broker", broker)
    assert listed.returncode == 0, listed.stderr.decode()
    text = lines(listed.stdout)
    assert any(line.startswith("1 topology False -") for line in text), text
    live = [line for line in text if line.startswith("live:")]
    assert len(live) == 1 and live[0].startswith("live: version 1 (the topology's model, "), text
    assert live[0].endswith("; no candidate"), text

    model = tmp_path / "v2.pkl"
    model.write_bytes(pickle.dumps(Scaled(2.0)))
    done = doa_command("model", "publish", path, "m", str(model), "--broker", broker)
    assert done.returncode == 0, done.stderr.decode()
    listed = doa_command("model", "list", path, "m", "--broker", broker)
    text = lines(listed.stdout)
    assert any(line.startswith("2 publish False") for line in text), text
    assert "live: version 2; no candidate" in text, text
