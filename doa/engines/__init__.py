"""Engines: the only code that runs nodes on Kafka. ``kafka`` (aiokafka, the default), ``faust``.

An engine runs :class:`doa.runtime.runner.NodeRunner` for each selected node: it consumes raw
records, calls ``process``, produces the outputs, commits, and keeps each partition's snapshot.
An engine provides a worker class with the :class:`Worker` shape, registered in ``ENGINES``.

Engines are not the only Kafka clients in doa. The others, none of which runs a node:

- :mod:`doa.client` (kafka-python): ``Publisher`` and ``Subscriber`` for applications, and
  ``doa publish``, ``doa subscribe`` and ``doa model`` on top of them;
- :mod:`doa.dlq` (kafka-python): ``doa dlq`` lists and replays dead letters;
- :mod:`doa.cluster`: ``admin`` creates topics (aiokafka's admin client), ``registry`` reads and
  writes schema versions on ``_doa_schemas`` (kafka-python), ``security`` checks credentials
  with one aiokafka connection (``reach`` only opens a TCP socket);
- :mod:`doa.local`: the local brokers doa starts are probed with hand-written ApiVersions and
  Metadata requests until they answer.

Nodes themselves never touch Kafka: their steps are pure.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from doa.node import Node
    from doa.topology.topology import Topology

ENGINES = {"kafka": "doa.engines.kafka:NodeWorker", "faust": "doa.engines.faust:FaustWorker"}


class Worker(Protocol):
    """What ``doa run`` needs of an engine: one worker per node."""

    stats: NodeStats
    node: Node

    async def start(self) -> None: ...

    async def run(self, stop: asyncio.Event) -> None: ...

    async def close(self) -> None: ...


def worker_class(engine: str) -> Any:
    """The worker class of ``engine`` (imported only when used)."""
    from doa.errors import DoaError

    if engine not in ENGINES:
        raise DoaError(f"unknown engine {engine!r} (engines: {', '.join(ENGINES)})")
    module, _, name = ENGINES[engine].partition(":")
    try:
        loaded = importlib.import_module(module)
    except ModuleNotFoundError as e:
        if engine == "faust" and (e.name or "").split(".")[0] in ("faust", "mode"):
            raise DoaError("the faust engine needs faust-streaming: "
                           "python -m pip install 'doa[faust]'") from e
        raise
    return getattr(loaded, name)


def session_refused(address: str, node: str, session_timeout_ms: int) -> Exception:
    """The error for a broker that refuses the consumer session timeout (Kafka's default
    ``group.min.session.timeout.ms`` is 6 s; doa's default of 3 s suits the embedded broker).

    Examples
    --------
    >>> print(session_refused("k:9092", "count", 3000))  # doctest: +ELLIPSIS
    node 'count': broker k:9092 refuses a consumer session timeout of 3000 ms ...
    """
    from doa.errors import DoaError

    return DoaError(f"node {node!r}: broker {address} refuses a consumer session timeout of "
                    f"{session_timeout_ms} ms (outside its group.min/max.session.timeout.ms); "
                    f"set DOA_SESSION_TIMEOUT_MS, e.g. DOA_SESSION_TIMEOUT_MS=10000")


def make_worker(engine: str, topology: Topology, node: Node, address: str,
                settings: EngineSettings | None = None) -> Worker:
    worker: Worker = worker_class(engine)(topology, node, address, settings)
    return worker


@dataclass(frozen=True)
class EngineSettings:
    """Knobs measured to matter on the embedded broker (see DESIGN.md, lab notes).

    ``session_timeout_ms``/``heartbeat_interval_ms``: consumer groups join in ~3 s instead of
    20-30 s with the defaults. ``fetch_max_wait_ms``: 5-20 ms gives ~2.5 ms latency, the
    500 ms default ~130 ms. ``snapshot_every_records``/``snapshot_every_ms``: how often each
    partition's state and offsets are written to the node's state topic. ``max_idle_ms``: a
    node reading several streams waits this long for an empty, caught-up input before it
    releases the others' records (the timestamp merge; Kafka Streams' ``max.task.idle.ms``).
    ``chain``: 1 (the default) hands outputs to nodes in the same process, 0 does not
    (``DOA_CHAIN=0``). ``rewrite``: 1 makes a restart write again the outputs its previous
    run wrote after its snapshot (left out by default, :mod:`doa.runtime.written`), to
    compare them with the first ones.
    """

    max_records: int = 500
    fetch_max_wait_ms: int = 10
    session_timeout_ms: int = 3000
    heartbeat_interval_ms: int = 1000
    linger_ms: int = 5
    acks: str | int = "all"
    snapshot_every_records: int = 5000
    snapshot_every_ms: int = 5000
    chunk_size: int = 512 * 1024
    max_idle_ms: int = 20
    chain: int = 1  # 1: nodes hand their outputs to nodes in the process (doa.engines.chain)
    rewrite: int = 0  # 1: a restart writes again what its previous run wrote (doa.runtime.written)
    extra_consumer: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> EngineSettings:
        """Settings with overrides from ``DOA_<FIELD>`` variables (e.g. ``DOA_MAX_RECORDS``).

        Examples
        --------
        >>> EngineSettings.from_env({"DOA_SNAPSHOT_EVERY_RECORDS": "100"}).snapshot_every_records
        100
        """
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"DOA_{f.name.upper()}")
            if raw is None or f.name == "extra_consumer":
                continue
            values[f.name] = raw if f.name == "acks" and not raw.lstrip("-").isdigit() \
                else int(raw)
        return cls(**values)  # type: ignore[arg-type]


@dataclass
class NodeStats:
    """Counters of one node in one process, kept current by the engines."""

    records_in: int = 0
    records_out: int = 0
    dead_letters: int = 0
    skipped: int = 0  # read, not processed: replays for another node (doa dlq --replay)
    snapshots: int = 0
    batches: int = 0
    first_output_s: float | None = None
    warm_up_s: float = 0.0  # the node's on_start hook (JIT compilation of kernels)
    first_batch_at: float | None = None  # time.monotonic() of the first and last batch
    last_batch_at: float | None = None
    handed_in: int = 0  # input records an upstream node in this process handed over (chain)
    handed_ignored: int = 0  # hand-overs ignored for a gap (the consumer fetched those records)
    # What a stop would leave undone (the kafka engine keeps these current; see doa.engines.outage):
    partitions: int = 0  # input partitions assigned to this node in this process
    outputs_unacked: int = 0  # outputs sent and not yet acknowledged by the broker
    offsets_uncommitted: int = 0  # input partitions whose position is not committed
    unsnapshotted: int = 0  # partitions with records processed since their last snapshot
