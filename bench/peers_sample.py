"""Where a variant's time goes, sampled (``python -m bench peers --profile VARIANT --sampler
py-spy``): the variant's process runs under ``py-spy record`` and its stacks are folded here.

cProfile (the default sampler) times every Python call, which roughly doubles a call's cost:
it overstates code made of many small calls (Avro encoders, lineage helpers) against code
that runs in C (River's arithmetic, the Kafka client's buffers) and slows the node ~3x. A
sampling profiler reads the stacks ``RATE`` times a second from outside the process and adds
nothing to it. Shares are of the samples taken in the event loop (the node's work and its
client's; start-up and imports before the loop are left out), so they read as "of the time
the node ran"; the loop's waits in ``select`` are counted and shown as idle.

Needs ``py-spy`` (in the ``[bench]`` extra) and the right to trace a child process (root, or
``ptrace_scope`` 0).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

RATE = 500  # samples per second
LOOP = "_run_once"  # the frame every sample of the event loop's work passes through
IDLE = "select"  # the loop waiting for the network


def _name(frame: str) -> str:
    """``function (file.py)`` of a py-spy frame ``function (path/file.py:line)``.

    >>> _name("NodeRunner.process (/x/doa/runtime/runner.py:140)")
    'NodeRunner.process (runner.py)'
    >>> _name("<module>")
    '<module>'
    """
    function, _, where = frame.partition(" (")
    if not where:
        return function
    return f"{function} ({where.rsplit('/', 1)[-1].rsplit(':', 1)[0]})"


def fold(lines: Iterable[str], root: str = LOOP) -> tuple[int, int, dict[str, int],
                                                          dict[str, int]]:
    """Fold py-spy's raw output (``frame;frame;... count`` per line, outermost first).

    Returns ``(samples, idle, inclusive, own)``: the samples at or under a ``root`` frame,
    those whose innermost frame is a ``select`` (the loop waiting), and per function the
    samples it was on the stack of (once per sample, however deep the recursion) and the
    samples it was the innermost frame of.

    >>> raw = ["main (a.py:1);_run_once (b.py:2);step (c.py:3);encode (d.py:4) 3",
    ...        "main (a.py:1);_run_once (b.py:2);select (e.py:5) 1",
    ...        "main (a.py:1);import (f.py:6) 9"]
    >>> samples, idle, inclusive, own = fold(raw)
    >>> samples, idle, inclusive["step (c.py)"], own["encode (d.py)"]
    (4, 1, 3, 3)
    """
    samples = idle = 0
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames)
                   if f.partition(" ")[0].rpartition(".")[2] == root), None)
        if at is None or not count.isdigit():
            continue
        n = int(count)
        names = [_name(f) for f in frames[at + 1:]]
        samples += n
        if names and names[-1].split(" ")[0].endswith(IDLE):
            idle += n
        for name in set(names):
            inclusive[name] += n
        if names:
            own[names[-1]] += n
    return samples, idle, dict(inclusive), dict(own)


def report(samples: int, idle: int, inclusive: dict[str, int], own: dict[str, int],
           top: int = 25) -> str:
    """The folded profile as two markdown tables: inclusive and own shares, top ``top``.

    >>> print(report(4, 1, {"step (c.py)": 3}, {"encode (d.py)": 3}, top=1))
    4 samples in the event loop, 25.0% of them idle (waiting in select)
    <BLANKLINE>
    | % of loop samples, inclusive | function |
    |---:|---|
    | 75.0 | step (c.py) |
    <BLANKLINE>
    | % of loop samples, own | function |
    |---:|---|
    | 75.0 | encode (d.py) |
    """
    def rows(counts: dict[str, int], what: str) -> list[str]:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [f"| % of loop samples, {what} | function |", "|---:|---|",
                *(f"| {100 * c / samples:.1f} | {name} |" for name, c in ranked)]
    if not samples:
        return "no sample in the event loop"
    return "\n".join([f"{samples} samples in the event loop, {100 * idle / samples:.1f}% of "
                      f"them idle (waiting in select)", "",
                      *rows(inclusive, "inclusive"), "", *rows(own, "own")])


def sample(variant: str, address: str, n: int, name: str, code: Path) -> tuple[dict[str, Any],
                                                                                 str]:
    """Run ``variant`` under py-spy; return its result and the folded profile's tables."""
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--sampler py-spy needs py-spy: python -m pip install -e '.[bench]'")
    with tempfile.TemporaryDirectory(prefix="peers-spy-") as tmp:
        raw = Path(tmp) / "stacks.txt"
        cmd = [spy, "record", "--rate", str(RATE), "--format", "raw", "--output", str(raw),
               "--", sys.executable, "-m", "bench.peers_run", variant, "--broker", address,
               "--records", str(n), "--name", name]
        done = subprocess.run(cmd, cwd=code, env={**os.environ, "PYTHONPATH": str(code)},
                              capture_output=True, text=True, timeout=900)
        result = next((json.loads(line) for line in done.stdout.splitlines()
                       if line.startswith("{")), None)
        if result is None or not raw.exists():
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise RuntimeError(f"py-spy run of {variant} failed (exit {done.returncode}): "
                               f"{' | '.join(tail)}")
        return result, report(*fold(raw.read_text().splitlines()))
