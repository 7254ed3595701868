"""Where local Kafka nodes live and how they end: their JVMs stopped (SIGKILL, or SIGTERM
for a node that writes the class-data archive, :mod:`doa.local.kafka_classes`) and their
temporary homes removed, by :meth:`doa.local.apache_kafka.LocalKafka.stop`, by a watchdog
process when the owner dies, or by the next start for an owner killed before its watchdog
ran."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from doa.local.kafka_node import KafkaError

__all__ = ["WATCHDOG", "kept_cluster_id", "kill_process", "sweep_stale_homes",
           "terminate_process", "watch_home"]


def terminate_process(proc: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    """SIGTERM and wait (a JVM writes its class-data archive at a clean exit); True if it
    ended in time, else it is killed."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    ended = proc.poll() is not None
    kill_process(proc)
    return ended


def kill_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)


WATCHDOG = """
import os, shutil, sys, time
fd, home = int(sys.argv[1]), sys.argv[2]
while os.read(fd, 1):  # EOF: the owner stopped, or died (kill -9 included)
    pass
if os.environ.get("DOA_KAFKA_KEEP"):
    sys.exit(0)
mark = ("-Ddoa.kafka.home=" + home).encode()
deadline = time.monotonic() + 60
def jvms():
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                if mark in f.read().split(b"\\0"):
                    yield pid
        except OSError:
            pass
while any(True for _ in jvms()) and time.monotonic() < deadline:
    time.sleep(0.1)  # its JVMs die with the owner (PR_SET_PDEATHSIG): let them go first
shutil.rmtree(home, ignore_errors=True)
"""


def watch_home(home: Path) -> tuple[int, subprocess.Popen[bytes]] | None:
    """Start the watchdog that removes ``home`` when this process is gone; the pipe end it
    waits on (closed by :meth:`LocalKafka.stop`, or by the kernel when this process dies)."""
    import sys

    if not Path("/proc").is_dir():
        return None  # sweep_stale_homes still cleans up on the next start
    read, write = os.pipe()
    try:
        proc = subprocess.Popen([sys.executable, "-c", WATCHDOG, str(read), str(home)],
                         pass_fds=(read,), stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        os.close(write)
        return None
    finally:
        os.close(read)
    return write, proc


def sweep_stale_homes() -> set[int]:
    """Remove the data of local Kafkas whose owner died without cleaning up (kill -9: its
    JVMs died with it, by PR_SET_PDEATHSIG, but a killed process removes nothing); return the
    ports the others hold, running or stopped to be restarted on them (a port free now may be
    a stopped node's, which another process's Kafka must not take)."""
    held: set[int] = set()
    for home in Path(tempfile.gettempdir()).glob("doa-kafka-*"):
        try:
            owner = int((home / "owner").read_text().strip())
        except (OSError, ValueError):
            continue
        try:
            os.kill(owner, 0)
        except ProcessLookupError:
            shutil.rmtree(home, ignore_errors=True)
            continue
        except PermissionError:
            pass  # alive: another user's
        with contextlib.suppress(OSError, ValueError):
            held.update(int(p) for p in (home / "ports").read_text().split())
    return held


def kept_cluster_id(data: Path | None, brokers: int) -> str | None:
    """The cluster id of the nodes' logs kept in ``data`` (``node-N/meta.properties``), or
    None when there are none yet; a directory kept for another number of nodes is refused.

    >>> from doa.local.kafka_node import _meta_properties
    >>> d = Path(tempfile.mkdtemp())
    >>> kept_cluster_id(d, 1) is None
    True
    >>> (d / "node-1").mkdir(); _ = (d / "node-1" / "meta.properties").write_text(
    ...     _meta_properties("abc", 1))
    >>> kept_cluster_id(d, 1)
    'abc'
    >>> kept_cluster_id(d, 3)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    doa.local.kafka_node.KafkaError: ... keeps the logs of 1 node (node-1), not 3: give another...
    """
    if data is None:
        return None
    kept = sorted(data.glob("node-*/meta.properties"))
    if not kept:
        return None
    if len(kept) != brokers:
        names = ", ".join(k.parent.name for k in kept)
        raise KafkaError(f"{data} keeps the logs of {len(kept)} node"
                         f"{'s' if len(kept) > 1 else ''} ({names}), not {brokers}: give "
                         "another directory")
    for line in kept[0].read_text().splitlines():
        if line.startswith("cluster.id="):
            return line.partition("=")[2].strip()
    raise KafkaError(f"{kept[0]} names no cluster.id: give another directory")
