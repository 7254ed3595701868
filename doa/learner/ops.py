"""The model calls of one learner step, run in order: one by one on River, or in one call of
a compiled kernel (``doa.compiled``), with the same results.

The learner plans its step: every feature record is a PREDICT, every matched label a LEARN on
the logged features; whatever needs a prediction's value (records, the metric) is deferred
and runs, in order, after the calls it depends on. A segment ends where the model itself must
be observed (a new version, a rollback, a reset) and at the end of the step.

Examples
--------
>>> from river import linear_model
>>> ops = Ops(linear_model.LinearRegression(), predict=lambda m, x: m.predict_one(x))
>>> ops.learn({"x": 1.0}, 2.0)
>>> cell = ops.predict({"x": 1.0})
>>> ops.later(lambda: print(round(cell[0], 4)))
>>> ops.flush()
0.08
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Cell = list[Any]  # [prediction], filled when the segment runs


class Ops:
    """Planned model calls and deferred effects; see the module docstring.

    Parameters
    ----------
    model : the River model, or a ``doa.compiled.CompiledModel``
    predict : how the River path predicts (``predict_one``, ``predict_proba_one`` or
        ``score_one``, as River's progressive validation chooses)
    convert : how the compiled path turns a kernel output row into that same value
    supervised : learn with the label (False: ``learn_one(x)``)

    ``beside``: the :class:`Ops` of a second model (a challenger) whose calls run with these,
    before the deferred effects (which may read both models' predictions).
    """

    def __init__(self, model: Any, predict: Callable[[Any, dict[str, Any]], Any],
                 convert: Callable[[Any], Any] | None = None, supervised: bool = True) -> None:
        self.model = model
        self._predict = predict
        self._convert = convert
        self.supervised = supervised
        self._calls: list[tuple[bool, dict[str, Any], Any, Cell | None]] = []
        self._effects: list[Callable[[], None]] = []
        self.beside: Ops | None = None

    def predict(self, x: dict[str, Any]) -> Cell:
        cell: Cell = [None]
        self._calls.append((True, x, None, cell))
        return cell

    def learn(self, x: dict[str, Any], y: Any) -> None:
        self._calls.append((False, x, y, None))

    def later(self, effect: Callable[[], None]) -> None:
        self._effects.append(effect)

    def flush(self) -> None:
        """Run the planned calls, then the deferred effects, in order."""
        calls, self._calls = self._calls, []
        if calls:
            if self._convert is not None:
                self._run_compiled(calls)
            else:
                self._run_river(calls)
        if self.beside is not None:
            self.beside.flush()
        effects, self._effects = self._effects, []
        for effect in effects:
            effect()

    def _run_river(self, calls: list[tuple[bool, dict[str, Any], Any, Cell | None]]) -> None:
        model, predict = self.model, self._predict
        for is_predict, x, y, cell in calls:
            if is_predict:
                cell[0] = predict(model, x)  # type: ignore[index]
            elif self.supervised:
                model.learn_one(x, y)
            else:
                model.learn_one(x)

    def _run_compiled(self, calls: list[tuple[bool, dict[str, Any], Any, Cell | None]]) -> None:
        import numpy as np

        from doa.compiled import LEARN, PREDICT

        model = self.model
        kinds = np.array([PREDICT if p else LEARN for p, _, _, _ in calls], dtype=np.int8)
        X = model.rows([x for _, x, _, _ in calls])
        y = np.array([np.nan if p or v is None else float(v) for p, _, v, _ in calls])
        out = model.run_ops(kinds, X, y if self.supervised else None)
        assert self._convert is not None
        for i, (is_predict, _, _, cell) in enumerate(calls):
            if is_predict:
                cell[0] = self._convert(out[i])  # type: ignore[index]
