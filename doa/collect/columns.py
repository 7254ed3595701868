"""The columns of a training set: logged features flattened, and the rows as an Arrow table.

Examples
--------
>>> names = feature_columns(None, [{"features": {"amount": 3.0, "label": 1.0},
...                                 "categories": {"country": "FR"},
...                                 "probabilities": {"False": 0.2, "True": 0.8}}],
...                         taken={"label"})
>>> names.all()
['amount', 'feature_label', 'country', 'probability_False', 'probability_True']
>>> value_type([True, None, False]), value_type([1, 2.5]), value_type([1, "a"])
('bool', 'float64', 'string')
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from doa.collect.dataset import Dataset

_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def utc(ms: int) -> datetime.datetime:
    """Epoch milliseconds as an aware UTC datetime (exact, unlike a float division).

    >>> utc(1700000000123)
    datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=datetime.timezone.utc)
    """
    return _EPOCH + datetime.timedelta(milliseconds=ms)


@dataclass
class Names:
    """Column names of the logged features: numeric, text and class probabilities; each
    maps a column to the key it holds in the prediction's map."""

    numeric: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    proba: list[str] = field(default_factory=list)
    _keys: dict[str, tuple[str, str]] = field(default_factory=dict)

    def all(self) -> list[str]:
        return [*self.numeric, *self.text, *self.proba]

    def values(self, prediction: dict[str, Any]) -> dict[str, Any]:
        """The row values of one prediction record (None where it has no such key)."""
        return {col: prediction[where].get(key) for col, (where, key) in self._keys.items()}


def feature_columns(spec: Any, predictions: Iterable[dict[str, Any]],
                    taken: set[str]) -> Names:
    """Columns for the keys of the predictions' ``features``, ``categories`` and
    ``probabilities`` maps, in the learner's ``feature_fields`` order, then as first seen."""
    order: dict[str, dict[str, None]] = {"features": {}, "categories": {}, "probabilities": {}}
    for p in predictions:
        for where, keys in order.items():
            for k in p.get(where) or ():
                keys.setdefault(k, None)
    fixed = list(getattr(spec, "feature_fields", None) or ())
    names = Names()
    used = set(taken)
    for where, prefix, into in (("features", "feature_", names.numeric),
                                ("categories", "category_", names.text),
                                ("probabilities", "probability_", names.proba)):
        ordered = [k for k in fixed if k in order[where]] + \
            [k for k in order[where] if k not in fixed]
        for k in ordered:
            col = prefix + k if where == "probabilities" or k in used else k
            used.add(col)
            into.append(col)
            names._keys[col] = (where, k)
    return names


def value_type(values: Sequence[Any]) -> str:
    """The Arrow type of a union-typed column (prediction, label) from its values."""
    kinds = {type(v) for v in values if v is not None}
    if kinds <= {bool}:
        return "bool"
    if kinds <= {int}:
        return "int64"
    if kinds <= {int, float}:
        return "float64"
    return "string"


def to_table(data: Dataset) -> Any:
    """The rows of ``data`` as a ``pyarrow.Table`` with one type per column."""
    from doa.collect.arrow import pyarrow

    pa = pyarrow()
    ts = pa.timestamp("ms", tz="UTC")
    types: dict[str, Any] = {
        "predicted_at": ts, "learned_at": ts, "partition": pa.int32(), "score": pa.float64(),
        "correct": pa.bool_(), "error": pa.float64(), "model_version": pa.int64(),
        "learned_version": pa.int64()}
    types.update({c: pa.float64() for c in (*data.features, *data.probabilities)})
    rows = data.rows
    for col in ("prediction", "label"):
        kind = value_type([r[col] for r in rows])
        types[col] = getattr(pa, "bool_" if kind == "bool" else kind)()
        if kind == "string":
            rows = [{**r, col: None if r[col] is None else str(r[col])} for r in rows]
    schema = pa.schema([pa.field(c, types.get(c, pa.string())) for c in data.columns],
                       metadata={"doa.learner": data.learner})
    return pa.Table.from_pylist(rows, schema=schema)
