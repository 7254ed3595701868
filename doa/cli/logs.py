"""Where the command line's logs go: a log file, and stderr only for what is meant for users.

The Kafka and Faust libraries log freely (a broker that is away gives a line every few
hundred milliseconds: "Unable connect to node", "Heartbeat failed for group"). The ``doa``
command sends every log record to a file, ``$DOA_LOG_FILE`` or
``~/.cache/doa/logs/doa.log`` (``$XDG_CACHE_HOME`` moves it), and shows on stderr only doa's
own warnings; ``doa -v`` (or ``--debug``) shows the libraries' too. Nothing is configured at
import: :func:`configure` is called by :func:`doa.cli.app.main`.

Every ``doa`` process on a machine appends to that one file, so it is rotated with care
(:class:`SharedRotatingFileHandler`): a process that finds the file renamed by another reopens
it, only one process at a time rotates (a lock on ``doa.log.lock``), and a log write that fails
never prints a traceback on the user's terminal.

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
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path

ENV_LOG_FILE = "DOA_LOG_FILE"
_STDERR = "doa-stderr"
MAX_BYTES = 5_000_000
BACKUPS = 2


def log_file(environ: Mapping[str, str] | None = None) -> Path:
    """The log file of the ``doa`` command."""
    env = os.environ if environ is None else environ
    if env.get(ENV_LOG_FILE):
        return Path(env[ENV_LOG_FILE]).expanduser()
    cache = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "doa" / "logs" / "doa.log"


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


@contextmanager
def _locked(path: str) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) between processes (POSIX)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: rotation is not locked there
        yield
        return
    with open(path, "a", encoding="utf-8") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)


class SharedRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log file that several processes append to at once.

    :class:`logging.handlers.RotatingFileHandler` assumes one writer: a process that another
    one rotated under keeps writing into the renamed file, measures the file by its own
    position, and rotates again, renaming files the other process already moved (the
    ``FileNotFoundError: ... doa.log.2`` of ``doRollover``) and overwriting backups. Here,
    before each record the handler checks that the file it holds is still the one at the path
    (as :class:`logging.handlers.WatchedFileHandler` does) and reopens it if not; it measures
    the file at the path; it rotates under a lock and only if the file is still over the size
    once the lock is held; a backup missing at rotation is skipped. A record that cannot be
    written is dropped without a word (:meth:`handleError`): the log file is for later, and a
    traceback from it would land in the middle of the command's output.

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> handler = SharedRotatingFileHandler(f"{folder}/x.log", maxBytes=30, backupCount=1)
    >>> log = logging.getLogger("doa.example.rotation")
    >>> log.propagate = False
    >>> log.addHandler(handler)
    >>> for i in range(3):
    ...     log.warning("record number %d", i)
    >>> log.removeHandler(handler); handler.close()
    >>> sorted(p.name for p in Path(folder).iterdir())
    ['x.log', 'x.log.1', 'x.log.lock']
    >>> Path(folder, "x.log").read_text().splitlines()
    ['record number 2']
    """

    def _follow(self) -> None:
        """Reopen the file if another process renamed or removed it."""
        if self.stream is None:
            return
        try:
            here = os.stat(self.baseFilename)
        except FileNotFoundError:
            here = None
        if here is None or not _same_file(here, os.fstat(self.stream.fileno())):
            self.stream.close()
            self.stream = None  # reopened by FileHandler.emit

    def _size(self) -> int:
        try:
            return os.stat(self.baseFilename).st_size
        except FileNotFoundError:
            return 0

    def shouldRollover(self, record: logging.LogRecord) -> bool:
        self._follow()
        if self.maxBytes <= 0:
            return False
        self._pending = len(self.format(record)) + 1
        return self._over()

    def _over(self) -> bool:
        size = self._size()
        return size > 0 and size + getattr(self, "_pending", 0) >= self.maxBytes

    def doRollover(self) -> None:
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        with _locked(self.baseFilename + ".lock"):
            if not self._over():
                return  # another process rotated it while this one waited for the lock
            for i in range(self.backupCount - 1, 0, -1):
                self._move(f"{self.baseFilename}.{i}", f"{self.baseFilename}.{i + 1}")
            if self.backupCount > 0:
                self._move(self.baseFilename, f"{self.baseFilename}.1")
            else:
                open(self.baseFilename, "w").close()

    def _move(self, source: str, target: str) -> None:
        with suppress(FileNotFoundError):
            os.replace(self.rotation_filename(source), self.rotation_filename(target))

    def handleError(self, record: logging.LogRecord) -> None:
        """Drop the record: no traceback on the user's terminal (see the class)."""


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
        handler: logging.Handler = SharedRotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUPS, delay=True, encoding="utf-8")
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
