"""``doa model publish --meta``: an item that is not KEY=VALUE, or a key of doa's own, is refused
in one line before any broker is asked (it was dropped silently, or kept as doa's own)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from doa.cli.model.publish import parse_meta

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(("item", "says"), [
    ("trained", "--meta trained: expected KEY=VALUE; nothing sent"),
    ("=x", "--meta =x: expected KEY=VALUE; nothing sent"),
    ("doa.classes=[0,1]", "--meta doa.classes=[0,1]: keys starting with 'doa.' are doa's own "
                          "(--classes sets doa.classes); nothing sent"),
])
def test_a_bad_meta_item_is_refused_in_one_line_before_the_broker(
        item: str, says: str, tmp_path: Path) -> None:
    model = tmp_path / "m.joblib"
    model.write_bytes(b"never read")
    # No broker listens on port 1: the refusal must come before doa reaches for one.
    proc = subprocess.run(
        [sys.executable, "-m", "doa.cli.app", "model", "publish", "topologies/fraud.py",
         "score", str(model), "--meta", item, "--broker", "127.0.0.1:1"],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1
    assert proc.stderr == f"error: {says}\n"


def test_meta_keeps_every_value_whole() -> None:
    assert parse_meta(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
