"""When the broker goes away: a status line while it is gone, and a bounded stop.

A node keeps retrying while its broker is unreachable (brokers come back; nothing is lost
meanwhile, the input waits in the log). :class:`BrokerWatch` probes the broker's address and
says so in one line when it becomes unreachable, every ``every_s`` seconds after, and when it
is back. A stop (SIGTERM, SIGINT, ``--for``) waits at most :func:`shutdown_grace_s` for the
nodes to flush, snapshot and commit; :func:`unfinished` then says in one line what could not
be completed.

Examples
--------
>>> shutdown_grace_s({"DOA_SHUTDOWN_GRACE_S": "2.5"})
2.5
>>> from doa.engines import NodeStats
>>> stats = {"count": NodeStats(outputs_unacked=812, offsets_uncommitted=4)}
>>> print(unfinished("127.0.0.1:9092", stats, unreachable=True))  # doctest: +NORMALIZE_WHITESPACE
broker 127.0.0.1:9092 unreachable: 812 outputs not acknowledged, offsets not committed; they
will be reprocessed on restart (same event ids)
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from aiokafka.errors import KafkaError

from doa.cluster.reach import reachable
from doa.engines import NodeStats
from doa.errors import DoaError

log = logging.getLogger(__name__)
ENV_GRACE = "DOA_SHUTDOWN_GRACE_S"
DEFAULT_GRACE_S = 10.0

Say = Callable[[str], None]


def shutdown_grace_s(environ: Mapping[str, str] | None = None) -> float:
    """How long a stop may take to flush, snapshot and commit: ``$DOA_SHUTDOWN_GRACE_S`` or
    10 s (an orchestrator's own grace, e.g. Kubernetes' 30 s, should be longer)."""
    raw = (os.environ if environ is None else environ).get(ENV_GRACE)
    if raw is None or not raw.strip():
        return DEFAULT_GRACE_S
    try:
        value = float(raw)
    except ValueError:
        raise DoaError(f"{ENV_GRACE}={raw!r} is not a number of seconds") from None
    if value < 0:
        raise DoaError(f"{ENV_GRACE}={raw!r}: the grace period cannot be negative")
    return value


def paused_partitions(stats: Mapping[str, NodeStats]) -> int:
    return sum(s.partitions for s in stats.values())


class BrokerWatch:
    """Probe ``address`` every ``interval_s`` (a TCP connect, off the event loop) and
    ``say`` when it becomes unreachable, every ``every_s`` while it stays so, and when it is
    back.

    Parameters
    ----------
    address : the bootstrap address (``HOST:PORT[,HOST:PORT...]``)
    stats : the nodes' counters, for the number of partitions waiting
    say : where the status lines go
    """

    def __init__(self, address: str, stats: Mapping[str, NodeStats], say: Say,
                 interval_s: float = 1.0, every_s: float = 10.0) -> None:
        self.address = address
        self.stats = stats
        self.say = say
        self.interval_s = interval_s
        self.every_s = every_s
        self.down_since: float | None = None
        self.outages: list[tuple[float, float]] = []  # (went away, came back), monotonic
        self._said = 0.0

    @property
    def unreachable(self) -> bool:
        return self.down_since is not None

    async def run(self) -> None:
        """Probe until cancelled."""
        loop = asyncio.get_running_loop()
        while True:
            up = await loop.run_in_executor(None, reachable, self.address, 1.0)
            self.observe(up, time.monotonic())
            await asyncio.sleep(self.interval_s)

    def observe(self, up: bool, now: float) -> None:
        """Take one probe's result at time ``now``; say what changed.

        Examples
        --------
        >>> lines = []
        >>> w = BrokerWatch("k:9092", {}, lines.append)
        >>> for t, up in [(0, True), (1, False), (5, False), (11, False), (21, True)]:
        ...     w.observe(up, float(t))
        >>> print("\\n".join(lines))
        broker k:9092 unreachable; retrying; 0 partitions paused
        broker k:9092 unreachable for 10 s; retrying; 0 partitions paused
        broker k:9092 back after 20 s; resuming from committed offsets and snapshots
        """
        if not up and self.down_since is None:
            self.down_since = self._said = now
            self.say(f"broker {self.address} unreachable; retrying; "
                     f"{paused_partitions(self.stats)} partitions paused")
        elif not up and self.down_since is not None and now - self._said >= self.every_s:
            self._said = now
            self.say(f"broker {self.address} unreachable for {now - self.down_since:.0f} s; "
                     f"retrying; {paused_partitions(self.stats)} partitions paused")
        elif up and self.down_since is not None:
            self.outages.append((self.down_since, now))
            self.say(f"broker {self.address} back after {now - self.down_since:.0f} s; "
                     "resuming from committed offsets and snapshots")
            self.down_since = None


def unfinished(address: str, stats: Mapping[str, NodeStats], unreachable: bool,
               grace_s: float | None = None) -> str:
    """One line: what a stop that ran out of time (or of broker) left undone, and why that
    loses nothing."""
    unacked = sum(s.outputs_unacked for s in stats.values())
    parts = [f"{unacked} outputs not acknowledged"] if unacked else []
    if any(s.offsets_uncommitted for s in stats.values()):
        parts.append("offsets not committed")
    unsnapshotted = sum(s.unsnapshotted for s in stats.values())
    if unsnapshotted:
        parts.append(f"state of {unsnapshotted} partition{'s' if unsnapshotted > 1 else ''} "
                     "not snapshotted")
    if unreachable:
        why = f"broker {address} unreachable"
    else:
        within = f" within {grace_s:g} s ({ENV_GRACE})" if grace_s is not None else ""
        why = f"stop not completed{within}"
    if not parts:
        return f"{why}: the nodes did not leave their consumer groups (nothing was pending)"
    return f"{why}: {', '.join(parts)}; they will be reprocessed on restart (same event ids)"


async def stop_client(client: Any, abandoned: bool, node: str) -> None:
    """Stop an aiokafka client; a worker ``abandoned`` after its shutdown grace gives up
    after a second (flushing or leaving the group needs the broker)."""
    if not abandoned:
        await client.stop()
        return
    try:
        await asyncio.wait_for(client.stop(), 1.0)
    except (asyncio.TimeoutError, KafkaError) as exc:
        log.debug("node %s: client not stopped cleanly (%s)", node, exc)
