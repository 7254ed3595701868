"""``doa publish --file``: every bad line at once, the file before the broker, and a NaN named.

Newcomer walk: three bad lines took three tries (only the first was said); ``--file
nope.jsonl`` complained about the missing broker first; a ``NaN`` written by Python's
``json.dumps`` was "not valid JSON (unexpected character, ...)" without naming it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from doa.cli.streams import _valid_lines
from doa.errors import DoaError

REPO = Path(__file__).resolve().parents[2]


def positive(record: dict[str, Any]) -> None:
    if record.get("v", 0) < 0:
        raise DoaError(f"stream 's': field v expected >= 0, got {record['v']}")


def test_every_bad_line_is_named_one_line_each() -> None:
    lines = ['{"v": 1}\n', '{"v": 1\n', "\n", '{"v": -2}\n', "[1]\n", '{"v": 3}\n']
    with pytest.raises(DoaError) as caught:
        _valid_lines(lines, positive)
    assert str(caught.value).splitlines() == [
        "3 bad lines; nothing was published:",
        "  line 2, column 8: not valid JSON (unexpected end of data)",
        "  line 4: stream 's': field v expected >= 0, got -2",
        "  line 5: expected a JSON object, got list",
    ]


def test_past_twenty_bad_lines_says_how_many_more() -> None:
    with pytest.raises(DoaError) as caught:
        _valid_lines(['{"v": -1}\n'] * 25, positive)
    said = str(caught.value).splitlines()
    assert said[0] == "25 bad lines; nothing was published:" and len(said) == 22
    assert said[20] == "  line 20: stream 's': field v expected >= 0, got -1"
    assert said[21] == "  and 5 more"


def test_a_bad_timestamp_is_one_of_the_bad_lines() -> None:
    with pytest.raises(DoaError) as caught:
        _valid_lines(['{"v": -1, "ts": 5}\n', '{"v": 1, "ts": "noon"}\n'], positive, "ts")
    assert str(caught.value).splitlines()[1:] == [
        "  line 1: stream 's': field v expected >= 0, got -1",
        "  line 2: --timestamp-field ts: expected ms since the epoch (an integer >= 0), got "
        "str 'noon'"]


@pytest.mark.parametrize(("value", "column"), [("NaN", 18), ("Infinity", 18),
                                               ("-Infinity", 19)])
def test_a_nan_is_named_with_what_to_write_instead(value: str, column: int) -> None:
    with pytest.raises(DoaError) as caught:
        _valid_lines([f'{{"t": 20.5, "h": {value}}}\n'], positive)
    assert str(caught.value) == (
        f"line 1, column {column}: not valid JSON ({value}: JSON has no NaN or Infinity, "
        f"Python's json.dumps writes them): write it as the string \"{value}\" (a float or "
        "double field takes \"NaN\", \"Infinity\", \"-Infinity\"), null for an optional "
        "field, or leave the record out; nothing was published")


def test_a_missing_file_is_said_before_the_missing_broker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "DOA_BROKER"}
    nope = tmp_path / "nope.jsonl"
    done = subprocess.run([sys.executable, "-m", "doa.cli.app", "publish", "readings",
                           "--file", str(nope)], capture_output=True, text=True,
                          cwd=REPO, env=env, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert f"'{nope}' does not exist" in done.stderr.splitlines()[-1], done.stderr
    assert "broker" not in done.stderr
