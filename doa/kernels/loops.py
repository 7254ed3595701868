"""The library's kernel loops, in plain Python; :mod:`doa.kernels.library` compiles them.

Each has the kernel signature (see :mod:`doa.kernels.library`) and allocates nothing in its
loop. A value that is NaN or ±inf is *missing*: it leaves its key's state exactly as it was (as
if the event had not arrived) and the event's outputs describe the key's values so far, as
pandas' window functions do (they take ±inf as NaN, and skip NaN); see each kernel's
constructor for what exactly.

Examples
--------
>>> import numpy as np
>>> state, out = np.zeros((1, 3)), np.zeros((3, 3))
>>> ewm_loop(np.zeros(3, dtype=np.int64), np.arange(3), np.array([1.0, np.nan, 3.0]), state,
...          np.array([0.5]), out)
>>> out                                     # the NaN's outputs: the mean and var so far
array([[1., 0., 0.],
       [1., 0., 0.],
       [2., 1., 0.]])
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["VAR_NOISE", "ewm_loop", "rate_loop", "since_previous_loop", "sliding_loop",
           "tumbling_loop"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]

# z is 0 when the variance before the update is below this fraction of E[x^2]: River's
# E[x^2] - E[x]^2 is then indistinguishable from its own rounding noise (~1e-16 relative).
VAR_NOISE = 1e-14


def ewm_loop(slots: I64, times_ms: I64, values: F64, state: F64, params: F64,
             out: F64) -> None:
    # row: values seen, mean, E[x^2]
    alpha = params[0]
    for i in range(slots.shape[0]):
        s = slots[i]
        x = values[i]
        m0 = state[s, 1]
        q0 = state[s, 2]
        if not math.isfinite(x):  # missing: the state stays; the outputs are the ones so far
            seen = state[s, 0] != 0.0
            out[i, 0] = m0 if seen else math.nan
            out[i, 1] = q0 - m0 * m0 if seen else math.nan
            out[i, 2] = 0.0
            continue
        if state[s, 0] == 0.0:
            mean = x
            sq = x * x
            z = 0.0
        else:
            v0 = q0 - m0 * m0
            z = (x - m0) / math.sqrt(v0) if v0 > VAR_NOISE * q0 else 0.0
            mean = alpha * x + (1.0 - alpha) * m0
            sq = alpha * (x * x) + (1.0 - alpha) * q0
        state[s, 0] += 1.0
        state[s, 1] = mean
        state[s, 2] = sq
        out[i, 0] = mean
        out[i, 1] = sq - mean * mean
        out[i, 2] = z


def tumbling_loop(slots: I64, times_ms: I64, values: F64, state: F64, params: F64,
                  out: F64) -> None:
    # row: count, window, sum, min, max
    width = int(params[0])
    for i in range(slots.shape[0]):
        s = slots[i]
        x = values[i]
        window = float(times_ms[i] // width)
        fresh = state[s, 0] == 0.0 or window > state[s, 1]
        if not math.isfinite(x):  # missing: the state stays
            if fresh:  # its window has no value yet
                out[i, 0] = 0.0
                out[i, 1] = 0.0
                out[i, 2] = math.nan
                out[i, 3] = math.nan
                out[i, 4] = math.nan
                continue
        elif fresh:
            state[s, 0] = 1.0
            state[s, 1] = window
            state[s, 2] = x
            state[s, 3] = x
            state[s, 4] = x
        else:  # same window, or a late event: it counts in the key's current window
            state[s, 0] += 1.0
            state[s, 2] += x
            if x < state[s, 3]:
                state[s, 3] = x
            if x > state[s, 4]:
                state[s, 4] = x
        out[i, 0] = state[s, 0]
        out[i, 1] = state[s, 2]
        out[i, 2] = state[s, 2] / state[s, 0]
        out[i, 3] = state[s, 3]
        out[i, 4] = state[s, 4]


def sliding_loop(slots: I64, times_ms: I64, values: F64, state: F64, params: F64,
                 out: F64) -> None:
    # row: start, n, seen, latest, times[cap], values[cap] (a ring buffer in insertion order)
    width = params[0]
    cap = int(params[1])
    for i in range(slots.shape[0]):
        s = slots[i]
        t = float(times_ms[i])
        start = int(state[s, 0])
        n = int(state[s, 1])
        latest = max(state[s, 3], t) if state[s, 2] != 0.0 else t
        low = latest - width  # the window is (latest - width, latest]
        x = values[i]
        if math.isfinite(x):  # a missing value leaves the state as it was
            if n == cap:  # full: the oldest event leaves
                start = (start + 1) % cap
                n -= 1
            j = (start + n) % cap
            state[s, 4 + j] = t
            state[s, 4 + cap + j] = x
            n += 1
            while n > 0 and state[s, 4 + start] <= low:
                start = (start + 1) % cap
                n -= 1
            state[s, 0] = start
            state[s, 1] = n
            state[s, 2] = 1.0
            state[s, 3] = latest
        count = 0
        total = 0.0
        lo = math.inf
        hi = -math.inf
        for k in range(n):
            j = (start + k) % cap
            if state[s, 4 + j] > low:  # late events may sit behind younger ones
                v = state[s, 4 + cap + j]
                count += 1
                total += v
                if v < lo:
                    lo = v
                if v > hi:
                    hi = v
        out[i, 0] = count
        out[i, 1] = total
        out[i, 2] = total / count if count else math.nan
        out[i, 3] = lo if count else math.nan
        out[i, 4] = hi if count else math.nan


def rate_loop(slots: I64, times_ms: I64, values: F64, state: F64, params: F64,
              out: F64) -> None:
    # row: start, n, seen, latest, times[cap]; values are ignored
    width = params[0]
    cap = int(params[1])
    for i in range(slots.shape[0]):
        s = slots[i]
        t = float(times_ms[i])
        start = int(state[s, 0])
        n = int(state[s, 1])
        latest = max(state[s, 3], t) if state[s, 2] != 0.0 else t
        if n == cap:
            start = (start + 1) % cap
            n -= 1
        state[s, 4 + (start + n) % cap] = t
        n += 1
        low = latest - width
        while n > 0 and state[s, 4 + start] <= low:
            start = (start + 1) % cap
            n -= 1
        count = 0
        for k in range(n):
            if state[s, 4 + (start + k) % cap] > low:
                count += 1
        state[s, 0] = start
        state[s, 1] = n
        state[s, 2] = 1.0
        state[s, 3] = latest
        out[i, 0] = count * 1000.0 / width


def since_previous_loop(slots: I64, times_ms: I64, values: F64, state: F64, params: F64,
                        out: F64) -> None:
    # row: seen, previous time; values are ignored
    for i in range(slots.shape[0]):
        s = slots[i]
        t = float(times_ms[i])
        out[i, 0] = t - state[s, 1] if state[s, 0] != 0.0 else math.nan
        state[s, 0] = 1.0
        state[s, 1] = t
