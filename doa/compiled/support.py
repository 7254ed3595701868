"""Which River models have a compiled equivalent, and why not: without numba, and without
importing a River module the model does not already use.

Every topology with a learner asks :func:`why_not` when it is declared, so every ``doa``
command loading one (``doa check``, ``doa model promote``, ``doa catalog``) did: importing
``river.preprocessing`` for the check alone took 0.6 s and numba 0.36 s of each command on a
quiet machine. A River class is looked up in its module only if that module is imported:
an object of the class cannot exist before (unpickling one imports its module too).
"""

from __future__ import annotations

import numbers
import sys
from typing import Any

__all__ = ["UnsupportedModel", "steps_of", "supports", "why_not"]


def _imported(module: str, *names: str) -> tuple[type, ...]:
    """River's classes ``module.NAME`` if ``module`` is imported, else none.

    >>> _imported("no.such.module", "Thing")
    ()
    """
    found = sys.modules.get(module)
    return () if found is None else tuple(getattr(found, name) for name in names)


class UnsupportedModel(ValueError):
    """The River object has no compiled equivalent (the message says why)."""


def steps_of(model: Any) -> list[Any]:
    """The model's stages: a pipeline's steps in order, else the model alone."""
    from river import compose

    return list(model.steps.values()) if isinstance(model, compose.Pipeline) else [model]


def _stage_reason(step: Any) -> str | None:
    if type(step) not in _imported("river.preprocessing", "StandardScaler", "MinMaxScaler"):
        return f"{type(step).__name__} is not a supported transformer"
    if step.window_size is not None:
        return f"{type(step).__name__}(window_size={step.window_size}) is not supported"
    return None


def _scheduler_reason(name: str, s: Any) -> str | None:
    from river.optim import schedulers

    if type(s) not in (schedulers.Constant, schedulers.InverseScaling, schedulers.Optimal):
        return f"{name} {type(s).__name__} is not supported (Constant, InverseScaling, Optimal)"
    return None


def _linear_reason(step: Any) -> str | None:
    from river import linear_model, optim

    name = type(step).__name__
    losses = ((optim.losses.Log, optim.losses.Hinge)
              if type(step) is linear_model.LogisticRegression else
              (optim.losses.Squared, optim.losses.Absolute, optim.losses.Huber,
               optim.losses.Quantile))
    if type(step.optimizer) is not optim.SGD:
        return f"{name}: optimizer {type(step.optimizer).__name__} is not supported (SGD only)"
    if type(step.loss) not in losses:
        return (f"{name}: loss {type(step.loss).__name__} is not supported "
                f"({', '.join(c.__name__ for c in losses)})")
    if step.l1 != 0:
        return f"{name}: l1 is not supported"
    if type(step.initializer) not in (optim.initializers.Zeros, optim.initializers.Constant):
        return f"{name}: initializer {type(step.initializer).__name__} is not supported"
    if not isinstance(step.clip_gradient, numbers.Real):
        return f"{name}: clip_gradient must be a number"
    return (_scheduler_reason(f"{name}: learning rate", step.optimizer.lr)
            or _scheduler_reason(f"{name}: intercept_lr", step.intercept_lr))


def why_not(model: Any) -> str | None:
    """Why ``model`` cannot be compiled, or None if it can.

    Supported: ``preprocessing.StandardScaler``, ``preprocessing.MinMaxScaler`` (no
    ``window_size``), ``linear_model.LinearRegression`` (losses Squared, Absolute, Huber,
    Quantile), ``linear_model.LogisticRegression`` (Log, Hinge), both with ``optim.SGD`` and
    a Constant, InverseScaling or Optimal learning rate and intercept_lr, ``l2``,
    ``clip_gradient``, a Zeros or Constant initializer, no ``l1``;
    ``anomaly.HalfSpaceTrees``; and flat pipelines of scalers ending in any of them.

    >>> from river import linear_model, preprocessing, tree
    >>> why_not(preprocessing.StandardScaler() | linear_model.LogisticRegression()) is None
    True
    >>> why_not(tree.HoeffdingTreeClassifier())
    'HoeffdingTreeClassifier is not supported'
    """
    from river import compose

    try:
        steps = steps_of(model)
    except Exception as exc:  # a broken object: report, never crash the caller
        return f"cannot inspect {type(model).__name__}: {exc}"
    if not steps:
        return "an empty pipeline"
    if isinstance(model, compose.Pipeline) and compose.Pipeline._LEARN_UNSUPERVISED_DURING_PREDICT:
        return "compose.learn_during_predict() is active"
    *stages, last = steps
    for s in stages:
        reason = _stage_reason(s)
        if reason is not None:
            return reason
    if type(last) in _imported("river.linear_model", "LinearRegression", "LogisticRegression"):
        return _linear_reason(last)
    if type(last) in _imported("river.anomaly", "HalfSpaceTrees"):
        return None
    if type(last) in _imported("river.preprocessing", "StandardScaler", "MinMaxScaler"):
        return _stage_reason(last)
    return f"{type(last).__name__} is not supported"


def supports(model: Any) -> bool:
    """Whether ``model`` has a compiled equivalent (see :func:`why_not`)."""
    return why_not(model) is None
