"""A class-data archive of Kafka's JVM: a local node starts in half the time and CPU.

Most of a local Kafka node's start-up is the JVM loading and verifying Kafka's classes. Java's
dynamic class-data sharing (AppCDS, JDK 13+) keeps them, as loaded, in an archive file that a
later JVM maps instead: on the 2-core machine this was written on, a node took 2.6-2.8 s and
3.4-3.5 s of CPU to serve without it, 1.1-1.4 s and 1.5-1.9 s of CPU with it.

The first node started for a Kafka version and a ``java`` writes the archive
(``-XX:ArchiveClassesAtExit``) when it ends: :meth:`ClassArchive.dumping` tells its owner
to stop it with SIGTERM (a JVM killed with SIGKILL writes nothing), and :meth:`finish` moves
the file into place beside the jars (``classes-KEY.jsa``, KEY from the ``java``'s path and
modification time and the Kafka version: another JDK makes another archive). One process at
a time writes (a file lock); the others start without it meanwhile. Later nodes map it
(``-XX:SharedArchiveFile``); a JVM that finds it unusable starts as it would without it.
Where the folder cannot be written (an image's cache, run as another user), nodes start
without one. ``DOA_KAFKA_CDS=0`` turns it off.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> from doa.local.kafka_node import Assembly
>>> root = Path(tempfile.mkdtemp())
>>> archive = ClassArchive("/bin/sh", Assembly("4.4.0", root))
>>> first = archive.options()  # none yet: this node writes it when it ends
>>> first[0].startswith("-XX:ArchiveClassesAtExit="), archive.dumping
(True, True)
>>> archive.options()  # a second node of the same cluster does not
[]
>>> Path(first[0].partition("=")[2]).write_bytes(b"CDS")  # what the JVM writes at its exit
3
>>> archive.finish(exited=True)
>>> ClassArchive("/bin/sh", Assembly("4.4.0", root)).options()[0].startswith(
...     "-XX:SharedArchiveFile=")
True
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path
from typing import IO

from doa.local.kafka_node import Assembly

ENV_CDS = "DOA_KAFKA_CDS"


class ClassArchive:
    """The class-data archive of one ``java`` for one assembled Kafka version.

    Parameters
    ----------
    java : the ``java`` that runs the nodes
    assembly : the assembled Kafka version (the archive lives in its folder)
    """

    def __init__(self, java: str, assembly: Assembly) -> None:
        real = os.path.realpath(java)
        try:
            stamp = os.stat(real).st_mtime_ns
        except OSError:
            stamp = 0
        key = hashlib.sha256(f"{real}\0{stamp}\0{assembly.version}".encode()).hexdigest()[:12]
        self.path = assembly.root / f"classes-{key}.jsa"
        self.failed = assembly.root / f"classes-{key}.failed"
        self._writing: Path | None = None
        self._lock: IO[str] | None = None

    @property
    def dumping(self) -> bool:
        """Whether a node of this owner writes the archive when it ends (stop it with
        SIGTERM, then :meth:`finish`)."""
        return self._writing is not None

    def options(self) -> list[str]:
        """The JVM options of the next node: map the archive; or, the first time, write it at
        the node's exit (one node of one process at a time); or nothing."""
        if os.environ.get(ENV_CDS, "1") == "0" or self.failed.exists() or self.dumping:
            return []
        if self.path.exists():
            return [f"-XX:SharedArchiveFile={self.path}", "-Xshare:auto"]
        try:  # held until finish
            lock = open(self.path.with_suffix(".lock"), "w")  # noqa: SIM115
        except OSError:  # a cache it may not write (an image's, run as another user)
            return []
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process writes it now
            lock.close()
            return []
        if self.path.exists():  # written while we looked
            lock.close()
            return [f"-XX:SharedArchiveFile={self.path}", "-Xshare:auto"]
        self._lock = lock
        self._writing = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        return [f"-XX:ArchiveClassesAtExit={self._writing}"]

    def finish(self, exited: bool) -> None:
        """The writing node has ended (``exited``: by itself after SIGTERM, in time): keep
        what it wrote; a JVM that ended so and wrote nothing cannot (say so once, in the
        ``.failed`` file: later nodes do not try again)."""
        writing, self._writing = self._writing, None
        if writing is None:
            return
        try:
            if writing.exists() and writing.stat().st_size > 0:
                os.replace(writing, self.path)
            elif exited:
                self.failed.write_text("the JVM wrote no class-data archive at its exit\n")
        finally:
            with contextlib.suppress(OSError):
                writing.unlink()
            if self._lock is not None:
                self._lock.close()
                self._lock = None
