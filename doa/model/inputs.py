"""What a model says of its inputs, checked against a model node's declared features.

A model node hands its model one 2-D array whose columns are the declared ``features`` in
their declared order: the model sees positions, never names. So a model that says it was
trained on another number of columns (:func:`input_width`), or on named columns in another
order (:func:`input_names`, scikit-learn's ``feature_names_in_``), would score each column
as another feature; :func:`other_width` and :func:`other_names` say so, and
:func:`doa.model.formats.load` refuses it (when the node loads it, at ``doa model publish``,
at ``doa check``). Each record's values
are checked too (:func:`bad_feature`): a missing, null, NaN or infinite feature makes that
record a dead letter.

Examples
--------
>>> import pandas as pd
>>> from sklearn.linear_model import LinearRegression
>>> df = pd.DataFrame({"hour": [1.0, 2.0, 3.0], "distance_km": [2.0, 1.0, 5.0]})
>>> model = LinearRegression().fit(df, [1.0, 2.0, 3.0])
>>> input_width(model), input_names(model)
(2, ['hour', 'distance_km'])
>>> print(other_names(model, node="price", features=["distance_km", "hour"],
...                what="model file 'lr.joblib'"))
model node 'price': model file 'lr.joblib' (LinearRegression) was trained on features in \
another order (hour, distance_km) than the node declares (distance_km, hour), and doa passes \
the columns by position: declare features=['hour', 'distance_km'] in the model's order, or \
retrain
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from doa.node import is_number, shown_type

__all__ = ["bad_feature", "input_names", "input_width", "not_numbers", "other_names",
           "other_width"]


def input_width(model: Any) -> int | None:
    """How many input features a loaded model says it expects: scikit-learn's
    ``n_features_in_``, or the static width of an ONNX model's 2-D input; None when it
    does not say.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> input_width(DummyRegressor().fit([[1.0, 2.0]], [0.0])), input_width(object())
    (2, None)
    """
    width = getattr(model, "n_features_in_", None)
    if type(model).__module__.startswith("onnxruntime"):
        inputs = model.get_inputs()
        shape = inputs[0].shape if len(inputs) == 1 else None
        width = shape[1] if shape is not None and len(shape) == 2 else None
    if isinstance(width, (int, np.integer)) and not isinstance(width, bool):
        return int(width)
    return None


def input_names(model: Any) -> list[str] | None:
    """The names of the columns a model was trained on, in order: scikit-learn's
    ``feature_names_in_`` (an estimator or a pipeline fitted on a ``pandas.DataFrame``);
    None when it does not say (fitted on an array). An ONNX model has none to say: doa
    feeds its one input a 2-D tensor, whose name is the tensor's, not its columns'.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> input_names(DummyRegressor().fit([[1.0, 2.0]], [0.0])) is None
    True
    """
    try:
        names = getattr(model, "feature_names_in_", None)
    except Exception:  # a pipeline whose first step says nothing
        return None
    if names is None or isinstance(names, (str, bytes)):
        return None
    try:
        return [str(n) for n in names]
    except TypeError:
        return None


def other_width(model: Any, *, node: str, features: Sequence[str], what: str) -> str | None:
    """Why a model node could not score with ``model`` (``what`` names it): it expects
    another number of input features than ``features`` has; None when it does not say so.

    Examples
    --------
    >>> from sklearn.dummy import DummyRegressor
    >>> print(other_width(DummyRegressor().fit([[1.0, 2.0]], [0.0]), node="n", features=["x"],
    ...                   what="model"))
    model node 'n': model (DummyRegressor) expects 2 input features, the node declares 1 (x)
    """
    width = input_width(model)
    if width is None or width == len(features):
        return None
    return (f"model node {node!r}: {what} ({type(model).__name__}) expects {width} input "
            f"features, the node declares {len(features)} ({', '.join(features)})")


def other_names(model: Any, *, node: str, features: Sequence[str], what: str) -> str | None:
    """Why a model node could not score with ``model`` (``what`` names it): it was trained
    on features of other names than ``features``, or the same in another order; None when
    it was not, or does not say (:func:`input_names`)."""
    names = input_names(model)
    if names is None or names == list(features):
        return None
    trained = "in another order" if sorted(names) == sorted(features) else "of other names"
    return (f"model node {node!r}: {what} ({type(model).__name__}) was trained on features "
            f"{trained} ({', '.join(names)}) than the node declares ({', '.join(features)}), "
            f"and doa passes the columns by position: declare features={names!r} in the "
            "model's order, or retrain")


def not_numbers(fields: Mapping[str, Any] | None, features: Sequence[str]) -> list[
        tuple[str, str]]:
    """The features whose Avro type in ``fields`` is not a number (see :data:`doa.node.NUMBERS`; a
    date or time decodes as a ``datetime``), each with its type as a message shows it: the
    node's array could not hold them, so every record would be a dead letter.

    Examples
    --------
    >>> not_numbers({"temp": ["null", "double"], "ok": "boolean", "status": "string",
    ...              "at": {"type": "long", "logicalType": "timestamp-millis"}},
    ...             ["temp", "ok", "status", "at", "absent"])
    [('status', 'string'), ('at', 'long (timestamp-millis)')]
    """
    return [(f, shown_type(fields[f])) for f in features
            if fields is not None and f in fields and not is_number(fields[f])]


def bad_feature(event: Mapping[str, Any], features: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``features`` that ``event`` has missing, null, not a number, NaN or
    infinite (a model would fail on it, or score it silently), and how a message shows
    it; None when every one is a finite number (a boolean counts as 0 or 1).

    Examples
    --------
    >>> bad_feature({"a": 1, "b": True, "c": 2.5}, ["a", "b", "c"]) is None
    True
    >>> bad_feature({"a": 1.0, "b": float("nan")}, ["a", "b"])
    ('b', 'nan')
    >>> bad_feature({"a": None}, ["a"]), bad_feature({}, ["a"]), bad_feature({"a": "7"}, ["a"])
    (('a', 'null'), ('a', 'missing'), ('a', "'7', not a number"))
    """
    for f in features:
        if f not in event:
            return f, "missing"
        value = event[f]
        if value is None:
            return f, "null"
        if not isinstance(value, (int, float, Decimal)):
            return f, f"{value!r}, not a number"
        try:
            finite = math.isfinite(value)
        except ValueError:  # a signalling NaN decimal
            finite = False
        if not finite:
            return f, str(value)
    return None

