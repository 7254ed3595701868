"""Per-key streaming feature kernels, compiled with Numba, run on a whole micro-batch at once.

A Numba call costs ~0.9 µs of dispatch, as much as doing one event's update in Python; on a
batch of 64 events it is ~30x faster than Python. So a kernel takes a batch: arrays of slots
(one per key), event times in ms and values, plus the state of every key as one float64 array
(a row per key) that it updates in place, and writes one row of outputs per event.

The library (each returns a :class:`Kernel`):

=========================  ===========================  =====================================
kernel                     outputs                      equals
=========================  ===========================  =====================================
``ewm(alpha)``             mean, var, zscore            ``river.stats.EWMean`` / ``EWVar``
``tumbling(window_ms)``    count, sum, mean, min, max   the window's events so far
``sliding(window_ms, c)``  count, sum, mean, min, max   ``utils.TimeRolling(stats.Mean, ...)``
``rate(window_ms, c)``     per_s                        events in the sliding window / second
``since_previous()``       ms                           time since the key's previous event
=========================  ===========================  =====================================

A NaN or infinite value is missing: it leaves the key's state as it was, as pandas' ``ewm``
and ``rolling`` skip NaN (see :mod:`doa.kernels.library`).

:func:`kernel_node` turns ``{feature: (value field, kernel)}`` into a topology node; its state
is a :class:`KernelState` (key → slot, and NumPy arrays). Your own kernel is a function with
the same signature (see :mod:`doa.kernels.library`), compiled with :func:`jit_kernel`.

JIT warm-up
-----------
Kernels compile on first use: 0.2-0.6 s per kernel with numba's on-disk cache empty (about
2 s for the library's five), about 0.3 s for all five once the cache holds them (mostly numba's
one-time set-up on the first call), plus about 0.4 s to import numba; ``bench/bench_kernels.py``
measures it. So a kernel node compiles when it starts, not on its first record:
``node.options["on_start"]`` is a zero-argument callable doing :func:`warm_up`. The cache
lives in ``doa/kernels/__pycache__`` when that is writable, else in ``~/.cache/numba``; in
read-only deployments set ``NUMBA_CACHE_DIR`` to a writable, ideally persistent, directory
(or fill the cache while building the image, with the same path set). Importing ``doa`` never
imports numba; importing ``doa.kernels`` does, and compiles nothing.

Examples
--------
>>> from doa.kernels import Kernel, ewm, sliding
>>> k = sliding(window_ms=10, capacity=8)
>>> k.run(slots=[0, 0, 0], times_ms=[0, 5, 12], values=[1.0, 2.0, 4.0])
array([[1. , 1. , 1. , 1. , 1. ],
       [2. , 3. , 1.5, 1. , 2. ],
       [2. , 6. , 3. , 2. , 4. ]])
>>> k.outputs
('count', 'sum', 'mean', 'min', 'max')
"""

from __future__ import annotations

from doa.kernels.library import (
    Kernel,
    ewm,
    jit_kernel,
    rate,
    since_previous,
    sliding,
    tumbling,
    warm_up,
)
from doa.kernels.node import KernelState, avro_fields, kernel_node

__all__ = ["Kernel", "KernelState", "avro_fields", "ewm", "jit_kernel", "kernel_node", "rate",
           "since_previous", "sliding", "tumbling", "warm_up"]

LIBRARY = ("ewm", "tumbling", "sliding", "rate", "since_previous")
