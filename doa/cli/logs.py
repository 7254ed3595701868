"""Where the command line's logs go: a log file, and stderr only for what is meant for users.

The Kafka and Faust libraries log freely (a broker that is away gives a line every few
hundred milliseconds: "Unable connect to node", "Heartbeat failed for group"). The ``doa``
command sends every log record to a file, ``$DOA_LOG_FILE`` or
``~/.cache/doa/logs/doa.log`` (``$XDG_CACHE_HOME`` moves it), and shows on stderr only doa's
own warnings; ``doa -v`` (or ``--debug``) shows the libraries' too. Nothing is configured at
import: :func:`configure` is called by :func:`doa.cli.app.main`.

Examples
--------
>>> str(log_file({"DOA_LOG_FILE": "/tmp/x.log"}))
'/tmp/x.log'
>>> str(log_file({"XDG_CACHE_HOME": "/c"}))
'/c/doa/logs/doa.log'
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
from collections.abc import Mapping
from pathlib import Path

ENV_LOG_FILE = "DOA_LOG_FILE"
_STDERR = "doa-stderr"


def log_file(environ: Mapping[str, str] | None = None) -> Path:
    """The log file of the ``doa`` command."""
    env = os.environ if environ is None else environ
    if env.get(ENV_LOG_FILE):
        return Path(env[ENV_LOG_FILE]).expanduser()
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "doa" / "logs" / "doa.log"


class _Terse(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{record.levelname.lower()}: {record.getMessage()}"


class _DoaOnly(logging.Filter):
    """doa's own warnings (not the libraries')."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "doa" or record.name.startswith("doa.")


def configure(verbose: bool = False) -> Path | None:
    """Send every log record (INFO and up) to :func:`log_file`, and to stderr doa's warnings
    (with ``verbose``: every record of INFO and up). Returns the file (None if it cannot be
    written: then only stderr)."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    path: Path | None = log_file()
    try:
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=5_000_000, backupCount=2, delay=True, encoding="utf-8")
        handler.setFormatter(logging.Formatter(
            "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    except OSError:
        path = None
    stderr = logging.StreamHandler(sys.stderr)
    stderr.set_name(_STDERR)
    stderr.setFormatter(_Terse())
    root.addHandler(stderr)
    show_on_stderr(verbose)
    logging.captureWarnings(True)  # "Unclosed AIOKafkaProducer" and the like: to the file
    return path


def show_on_stderr(everything: bool) -> None:
    """Show on stderr every record of INFO and up (``everything``), or doa's warnings."""
    for handler in logging.getLogger().handlers:
        if handler.get_name() == _STDERR:
            handler.filters.clear()
            handler.setLevel(logging.INFO if everything else logging.WARNING)
            if not everything:
                handler.addFilter(_DoaOnly())
