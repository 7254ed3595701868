"""Run a topology in memory, on plain lists, with a clock you move: for unit tests of nodes.

The harness uses the same :class:`doa.runtime.runner.NodeRunner` as the Kafka engine, so records are
validated, encoded, partitioned (Kafka's murmur2 partitioner), decoded and dead-lettered
exactly as on a broker. Only the log is a list instead of a topic.

Examples
--------
>>> from doa.topology.topology import Topology
>>> from doa.wire.schema import builtin_schema_dir
>>> t = Topology("demo", schemas=builtin_schema_dir())
>>> src = t.stream("src", schema="doa.DeadLetter", key="node")
>>> @t.node(reads=src, writes=(), state=lambda: 0)
... def count(state, batch):
...     return state + len(batch), []
>>> h = Harness(t)
>>> h.publish("src", [b"not avro"])
>>> h.run()
>>> h.state("count"), [d["error_type"] for d in h.dead_letters]
({0: 0}, ['DecodeError/bad-marker'])
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from doa.events import LINEAGE_HEADER, Event, Lineage, key_bytes, lineage_of, pack_lineage
from doa.events import partition_for as _partition_for
from doa.runtime.runner import NodeRunner, OutRecord, RawRecord
from doa.topology.topology import Topology

if TYPE_CHECKING:
    from doa.node import Node

__all__ = ["Clock", "Harness", "run"]


class Clock:
    """A clock in milliseconds that moves only when told.

    Examples
    --------
    >>> c = Clock(1000)
    >>> c.advance(250)
    1250
    >>> c()
    1250
    """

    def __init__(self, start_ms: int = 0) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now

    def advance(self, ms: int) -> int:
        """Move the clock forward by ``ms`` and return the new time."""
        if ms < 0:
            raise ValueError("a clock only moves forward")
        self.now += ms
        return self.now


class Harness:
    """An in-memory broker plus the runtime's node loop.

    Parameters
    ----------
    topology : the topology to run
    clock : record timestamps and dead-letter times come from it (default ``Clock(0)``)
    batch_size : most records a step sees at once (the Kafka engine's ``max_records``)
    """

    def __init__(self, topology: Topology, *, clock: Clock | None = None,
                 batch_size: int = 256) -> None:
        topology.check()
        self.topology = topology
        self.clock = clock or Clock()
        self.batch_size = batch_size
        self.logs: dict[str, list[list[RawRecord]]] = {
            s.name: [[] for _ in range(s.partitions)] for s in topology.streams.values()
        }
        self._runners = {n: NodeRunner(topology, node, self.clock)
                         for n, node in topology.nodes.items()}
        for runner in self._runners.values():
            runner.start()
        self._states: dict[str, dict[int, Any]] = {n: {} for n in topology.nodes}
        self._positions: dict[tuple[str, str, int], int] = {}

    # -- input ---------------------------------------------------------------------------------
    def publish(self, stream: str, records: Iterable[Mapping[str, Any] | bytes],
                *, partition: int | None = None,
                timestamps: Iterable[int] | None = None) -> None:
        """Append records to ``stream``: dicts are validated and encoded, bytes go in as is.

        Record timestamps come from the clock, or from ``timestamps`` (one per record).

        Raises :class:`doa.errors.EncodeError` for a dict that does not match the schema,
        exactly as a :class:`doa.client.Publisher` would.
        """
        spec = self.topology.streams[stream]
        codec = self.topology.codec(stream)
        times = iter(timestamps) if timestamps is not None else None
        for i, rec in enumerate(records):
            ts = next(times) if times is not None else self.clock()
            if isinstance(rec, (bytes, bytearray)):
                value, key = bytes(rec), None
                pid = partition if partition is not None else i % spec.partitions
                headers: tuple[tuple[str, bytes], ...] = ()
            else:
                value = codec.encode(rec)
                key = key_bytes(rec.get(spec.key)) if spec.key else None
                pid = partition if partition is not None else _partition_for(
                    key, spec.partitions, i)
                log = self.logs[stream][pid]
                stub = Event({}, stream=stream, partition=pid, offset=len(log), timestamp=0)
                lin = Lineage(stub.id, "harness", codec.schema.fingerprint)
                headers = ((LINEAGE_HEADER, pack_lineage(lin)),)
            log = self.logs[stream][pid]
            log.append(RawRecord(stream, pid, len(log), ts, key, value, headers))

    # -- running -------------------------------------------------------------------------------
    def run(self, nodes: Sequence[str] | None = None, max_batches: int = 1_000_000) -> None:
        """Run the nodes until no input is left unconsumed.

        Each node in turn (in topology order, partition by partition) takes batches while it
        has input. A node reading several streams takes a record only when every other input
        has a record to compare it with, or can get none any more (no node that could still
        write it has input left): its inputs merge as the complete logs would, as Kafka
        Streams' ``max.task.idle.ms`` makes them. When every node with input waits on a
        stream that only its own input can feed (a loop: a learner's outcomes go to a
        detector whose drift events the learner reads), the first such node takes one batch
        of what it has, as a broker's merge does when an input stays empty; then the others
        catch up, so the loop has its effect while the data still flows. Given the same
        published records, every run gives the same logs.
        """
        order = [n for n in self.topology.order() if nodes is None or n.name in nodes]
        batches = 0
        while True:
            for node in order:
                for p in range(self.topology.streams[node.reads[0]].partitions):
                    waiting = self._open(order)
                    while self._step(node.name, node.reads, p, waiting):
                        batches += 1
                        if batches > max_batches:
                            raise RuntimeError(f"no quiescence after {max_batches} batches; "
                                               "does the topology loop on itself?")
            stuck = self._stuck(order)
            if stuck is None:
                return
            self._step(stuck[0].name, stuck[0].reads, stuck[1], set())
            batches += 1

    def _pending(self, name: str, reads: Sequence[str], p: int) -> bool:
        return any(len(self.logs[s][p]) > self._positions.get((name, s, p), 0) for s in reads)

    def _open(self, order: Sequence[Node], without: str | None = None) -> set[str]:
        """Streams a node of ``order`` (but ``without``) may still write: those of nodes with
        input left (and the dead letters), then those of their readers, and so on."""
        busy = [n for n in order if n.name != without and any(
            self._pending(n.name, n.reads, p)
            for p in range(self.topology.streams[n.reads[0]].partitions))]
        found = {self.topology.dead_letters.name} if busy else set()
        while busy:
            node = busy.pop()
            for s in set(node.writes) - found:
                found.add(s)
                busy += [n for n in order if s in n.reads]
        return found

    def _stuck(self, order: Sequence[Node]) -> tuple[Node, int] | None:
        """The node and partition to give a batch of what it has when every node waits: the
        first whose awaited streams only its own input can feed (else the first waiting)."""
        pending = [(n, p) for n in order
                   for p in range(self.topology.streams[n.reads[0]].partitions)
                   if self._pending(n.name, n.reads, p)]
        for node, p in pending:
            awaited = {s for s in node.reads if len(self.logs[s][p]) <=
                       self._positions.get((node.name, s, p), 0)}
            if not awaited & self._open(order, without=node.name):
                return node, p
        return pending[0] if pending else None

    def _step(self, name: str, reads: Sequence[str], p: int, waiting: set[str]) -> bool:
        """One batch of partition ``p``'s inputs, merged by timestamp; an empty input in
        ``waiting`` stops the merge. False if it took no record."""
        queues = [self.logs[s][p][self._positions.get((name, s, p), 0):] for s in reads]
        at = [0] * len(queues)
        batch: list[RawRecord] = []
        while len(batch) < self.batch_size:
            # Each partition in offset order, as a consumer reads it; ties keep the declared
            # order of reads (labels first when declared first).
            head = None
            for i, (s, q) in enumerate(zip(reads, queues, strict=True)):
                if at[i] < len(q):
                    if head is None or q[at[i]].timestamp < queues[head][at[head]].timestamp:
                        head = i
                elif s in waiting:
                    head = None
                    break
            if head is None:
                break
            batch.append(queues[head][at[head]])
            at[head] += 1
        if not batch:
            return False
        states = self._states[name]
        if p not in states:
            states[p] = self.topology.nodes[name].state()
        result = self._runners[name].process(states[p], batch)
        states[p] = result.state
        for r in batch:
            self._positions[(name, r.stream, p)] = r.offset + 1
        for out in result.outputs:
            self._append(out)
        return True

    def _append(self, out: OutRecord) -> None:
        log = self.logs[out.stream][out.partition]
        log.append(RawRecord(out.stream, out.partition, len(log), out.timestamp, out.key,
                             out.value, out.headers))

    # -- results -------------------------------------------------------------------------------
    def records(self, stream: str) -> list[Event]:
        """Every record of ``stream``, decoded, partition by partition in offset order."""
        codec = self.topology.codec(stream)
        out = []
        for part in self.logs[stream]:
            for r in part:
                lin = lineage_of(r.headers)
                out.append(Event(codec.decode(r.value or b""), stream=stream,
                                 partition=r.partition, offset=r.offset, timestamp=r.timestamp,
                                 key=r.key, id=lin.id if lin else None,
                                 headers=tuple(r.headers)))
        return out

    @property
    def dead_letters(self) -> list[Event]:
        """The dead-letter stream's envelopes, decoded."""
        return self.records(self.topology.dead_letters.name)

    def state(self, node: str) -> dict[int, Any]:
        """A node's state per input partition."""
        return dict(self._states[node])


def run(topology: Topology, inputs: Mapping[str, Iterable[Mapping[str, Any] | bytes]],
        **options: Any) -> Harness:
    """Publish ``inputs`` (stream name to records), run every node, return the harness.

    Examples
    --------
    >>> import doa.testing
    >>> from doa.topology.topology import Topology
    >>> from doa.wire.schema import builtin_schema_dir
    >>> t = Topology("t", schemas=builtin_schema_dir())
    >>> _ = t.stream("s", schema="doa.DeadLetter")
    >>> doa.testing.run(t, {"s": [b"junk"]}).dead_letters == []  # nobody reads "s"
    True
    """
    h = Harness(topology, **options)
    for stream, records in inputs.items():
        h.publish(stream, records)
    h.run()
    return h
