"""What every variant of the peers benchmark shares: its clock, its codecs, its settings.

:mod:`bench.peers_run` runs one variant in a process; the loops and doa's variants live there,
Quix Streams' in :mod:`bench.peers_quix`. ``PROFILER`` is set by ``peers_run --profile``:
:class:`Clock` turns it on at the first batch and off at the end.
"""

from __future__ import annotations

import io
import time
from typing import Any

from bench import peers_workload as w

HEADER_SIZE = 10
PROFILER: Any = None  # a cProfile.Profile under --profile
GC_TIME = [0.0, 0.0, 0.0]  # seconds in cyclic GC per generation, under --profile
GC_COUNT = [0, 0, 0]
GC_FOUND = [0]  # objects the collections found unreachable (cyclic garbage)


def watch_gc() -> None:
    """Count collections and their time per generation (``gc.callbacks``)."""
    import gc

    began = [0.0]

    def callback(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            GC_TIME[info["generation"]] += time.perf_counter() - began[0]
            GC_COUNT[info["generation"]] += 1
            GC_FOUND[0] += info["collected"]

    gc.callbacks.append(callback)


class Clock:
    """Marks the first batch and the end: wall and process CPU time (and the profiler's span,
    when ``PROFILER`` is set: start-up and group join are left out)."""

    def __init__(self) -> None:
        self.t0 = self.c0 = self.t1 = self.c1 = 0.0

    def first(self) -> None:
        if not self.t0:
            self.t0, self.c0 = time.monotonic(), time.process_time()
            if PROFILER is not None:
                PROFILER.enable()
                GC_TIME[:], GC_COUNT[:], GC_FOUND[:] = [0.0] * 3, [0] * 3, [0]

    def end(self) -> None:
        if not self.t1 and PROFILER is not None:
            PROFILER.disable()
        self.t1, self.c1 = time.monotonic(), time.process_time()

    def result(self, n: int, outputs: int) -> dict[str, Any]:
        wall = self.t1 - self.t0
        return {"records": n, "outputs": outputs, "records_per_s": n / wall if wall else 0.0,
                "cpu_us_per_record": (self.c1 - self.c0) / n * 1e6}


def codec(reads: dict[str, Any], writes: dict[str, Any]) -> tuple[Any, Any]:
    """decode(bytes) -> dict of schema ``reads`` and encode(dict) -> bytes of schema ``writes``,
    single-object encoded, as a hand-written loop does them (fastavro, no checks)."""
    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from doa.wire.schema import Schema

    reader, writer = parse_schema(reads), parse_schema(writes)
    header = b"\xc3\x01" + Schema.from_json(writes).fingerprint

    def decode(value: bytes) -> Any:
        buf = io.BytesIO(value)
        buf.seek(HEADER_SIZE)
        return schemaless_reader(buf, reader, None)

    def encode(record: dict[str, Any]) -> bytes:
        buf = io.BytesIO()
        buf.write(header)
        schemaless_writer(buf, writer, record)
        return buf.getvalue()

    return decode, encode


def learner_codec() -> tuple[Any, Any]:
    """The learner workload's codec: ``Txn`` in, ``Scored`` out."""
    return codec(w.TXN, w.SCORED)


def pick(value: int | None, default: int) -> int:
    """``value`` unless it is None.

    >>> pick(None, 5), pick(0, 5)
    (5, 0)
    """
    return default if value is None else value

