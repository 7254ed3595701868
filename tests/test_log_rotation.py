"""Several ``doa`` processes writing and rotating one log file at once (walk finding: a
``--- Logging error ---`` traceback from ``doRollover`` on a user's terminal).

Each process configures logging as ``doa`` does (:func:`doa.cli.logs.configure`), shrinks the
file's size limit so that it rotates every few records, and logs numbered lines. No process
may print a logging error, every process must finish, and, with enough backups kept, every
line must be found exactly once in the file and its backups (a process writing into a file
another one renamed, then rotating it again, overwrote backups).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PROCESSES = 6
LINES = 400

_CHILD = """
import logging, logging.handlers, sys
from doa.cli.logs import configure
configure()
for handler in logging.getLogger().handlers:
    if isinstance(handler, logging.handlers.RotatingFileHandler):
        handler.maxBytes = 2_000
        handler.backupCount = int(sys.argv[2])
log = logging.getLogger("doa.test.rotation")
for i in range(int(sys.argv[1])):
    log.info("line %s %d", sys.argv[3], i)
print("done", flush=True)
"""


def _run(tmp_path: Path, backups: int) -> tuple[list[subprocess.CompletedProcess[str]], Path]:
    path = tmp_path / "logs" / "doa.log"
    env = {**os.environ, "DOA_LOG_FILE": str(path)}
    children = [subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(LINES), str(backups), f"p{n}"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(PROCESSES)]
    done = []
    for child in children:
        out, err = child.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(child.args, child.returncode, out, err))
    return done, path


def test_no_logging_error_and_no_process_lost(tmp_path: Path) -> None:
    done, _ = _run(tmp_path, backups=2)
    for result in done:
        assert "Logging error" not in result.stderr, result.stderr[-2000:]
        assert "Traceback" not in result.stderr, result.stderr[-2000:]
        assert result.returncode == 0 and result.stdout.strip() == "done", result.stderr[-2000:]


def test_every_line_kept_once_when_backups_suffice(tmp_path: Path) -> None:
    done, path = _run(tmp_path, backups=10_000)
    assert all(result.returncode == 0 for result in done)
    lines = [line.split(": ", 1)[1] for file in path.parent.glob("doa.log*")
             if not file.name.endswith(".lock") for line in file.read_text().splitlines()]
    expected = {f"line p{n} {i}" for n in range(PROCESSES) for i in range(LINES)}
    assert len(lines) == len(expected) and set(lines) == expected
    # A file may pass the limit by the lines other processes append between a check and a write.
    assert max(f.stat().st_size for f in path.parent.glob("doa.log*")) < 2_000 + PROCESSES * 100
