"""Compiled online learners: River models at Numba speed, numerically equal to River.

A supported River model (fresh or trained) becomes a :class:`CompiledModel` whose state
lives in NumPy arrays and whose batch call runs a Numba kernel over a sequence of operations,
each ``PREDICT(row)`` or ``LEARN(row, y)``, in order and with River's exact per-event
semantics (prequential: every operation sees the state the previous ones left; no mini-batch
SGD). Predictions and learned parameters equal River's to the last bit on the tested streams
(``tests/test_compiled.py``), and :meth:`CompiledModel.to_river` turns the state back into
the River object, so model snapshots stay River-readable.

Supported (see :func:`why_not`): ``preprocessing.StandardScaler`` and ``MinMaxScaler``,
``linear_model.LinearRegression`` and ``LogisticRegression`` (SGD with a constant,
inverse-scaling or optimal learning rate, ``intercept_lr``, ``l2``, ``clip_gradient``, the
main losses, a zeros or constant initializer), ``anomaly.HalfSpaceTrees``, and flat pipelines
of the scalers ending in any of these.

Examples
--------
>>> import numpy as np
>>> from river import linear_model, preprocessing
>>> from doa import compiled
>>> model = preprocessing.StandardScaler() | linear_model.LinearRegression()
>>> compiled.supports(model)
True
>>> cm = compiled.compile_model(model, features=["x"])
>>> ops = np.array([compiled.LEARN, compiled.LEARN, compiled.PREDICT], dtype=np.int8)
>>> out = cm.run_ops(ops, np.array([[1.0], [3.0], [2.0]]), np.array([2.0, 6.0, np.nan]))
>>> for x, y in [({"x": 1.0}, 2.0), ({"x": 3.0}, 6.0)]:
...     model.learn_one(x, y)
>>> float(out[2, 0]) == model.predict_one({"x": 2.0})
True

Kernels are compiled with ``numba.njit(cache=True)`` on first use; call :func:`warm_up` when
a node starts: about 2 s with numba's on-disk cache empty, 0.2 s loading from it
(``bench/bench_compiled.py`` measures both). Importing ``doa`` never imports this package;
importing it imports neither numba nor River: :func:`why_not` and :func:`supports` (asked by
every topology declaring a learner) need neither, the first use of anything else imports numba
(River only when a model is converted), and nothing is compiled before :func:`warm_up`.

Speed (``bench/results/compiled.json``): StandardScaler | LogisticRegression on
synth.Agrawal costs River ~9.4 µs per event (predict, then learn) and the kernel 0.30 µs in
batches of 512 (0.76 µs with the batch's arrays built from dicts), 2.5 µs one event per call.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from doa.compiled.support import UnsupportedModel, supports, why_not

if TYPE_CHECKING:
    from doa.compiled.kernels import warm_up
    from doa.compiled.model import LEARN, PREDICT, CompiledModel, compile_model

__all__ = ["LEARN", "PREDICT", "CompiledModel", "UnsupportedModel", "compile_model",
           "supports", "warm_up", "why_not"]

_NUMBA = {"warm_up": "doa.compiled.kernels", "LEARN": "doa.compiled.model",
          "PREDICT": "doa.compiled.model", "CompiledModel": "doa.compiled.model",
          "compile_model": "doa.compiled.model"}


def __getattr__(name: str) -> Any:
    """The kernels and the compiled model, imported (with numba) when first asked for."""
    module = _NUMBA.get(name)
    if module is None:
        raise AttributeError(f"module 'doa.compiled' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
