"""Whether a new version of a model node writes what its live version writes.

A version is scored on the same records into the same stream as the one before it, so its
predictions must keep their type: a scikit-learn classifier trained on booleans predicts
``False``/``True`` (probabilities keyed ``"False"``, ``"True"``), and its ONNX export from
``skl2onnx`` predicts ``0``/``1`` (keys ``"0"``, ``"1"``): consumers of the stream would
see another type. ``doa model publish`` compares the two (:func:`type_change`) before it
sends anything; ``--classes`` names an ONNX model's classes (:func:`parse_classes`), kept
with the version, and the node maps its labels and probabilities to them.

Examples
--------
>>> import numpy as np
>>> from doa.model.formats import load
>>> class Vote:
...     def __init__(self, classes): self.classes_ = classes
...     def predict_batch(self, X): return np.full((len(X), 2), 0.5)
>>> live = load(Vote([False, True]), node="m", features=["x"])
>>> new = load(Vote([0, 1]), node="m", features=["x"])
>>> print(type_change(new, live, width=1))
makes long predictions (classes 0, 1) where the live version makes boolean predictions \
(classes False, True)
>>> type_change(load(Vote([True, False]), node="m", features=["x"]), live, width=1) is None
True
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from doa.model.artifacts import ArtifactError, add_chunk, load_bytes
from doa.model.formats import ModelLoadError, Scorer, load

__all__ = ["CLASSES_KEY", "live_scorers", "parse_classes", "stored_classes", "type_change",
           "type_refusal", "written"]

CLASSES_KEY = "doa.classes"  # a version's metadata: its classes (JSON), from --classes
_AVRO = {bool: "boolean", int: "long", float: "double", str: "string", type(None): "null"}


def written(scorer: Scorer, width: int) -> tuple[str, list[str] | None] | None:
    """The Avro type of the predictions ``scorer`` makes and its class names (None for a
    model without probabilities), from one row of zeros; None when that row does not
    score (the model cannot say before it runs).

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier
    >>> model = DummyClassifier().fit([[0.0], [1.0]], [False, True])
    >>> written(load(model, node="m", features=["x"]), width=1)
    ('boolean', ['False', 'True'])
    """
    try:
        scored = scorer.score(np.zeros((1, width)))
    except Exception:  # a model that cannot score zeros: nothing to compare
        return None
    kind = _AVRO.get(type(scored.predictions[0]), type(scored.predictions[0]).__name__)
    return kind, None if scored.probabilities is None else list(scored.probabilities[0])


def type_change(new: Scorer, live: Scorer, *, width: int,
                live_name: str = "the live version") -> str | None:
    """How the predictions of ``new`` differ in type from those of ``live`` (None: they do
    not, or one of them cannot say); see :func:`written`."""
    got, had = written(new, width), written(live, width)
    if got is None or had is None or got[0] == had[0]:
        return None
    return f"makes {_shown(got)} where {live_name} makes {_shown(had)}"


def type_refusal(new: Scorer, live: Scorer, *, width: int, node: str, what: str, stream: str,
                 live_name: str = "the live version") -> str | None:
    """The one-line refusal of ``new`` (``what``: ``version 3 (x.onnx)``) as a version of
    model node ``node`` writing ``stream`` when it predicts another type than ``live`` (None:
    the same type, or one of them cannot say), with the fix that fits: a classifier's
    classes named in the live type (``--classes``), a regressor where a classifier runs or
    the reverse, or predictions of the live type.

    Examples
    --------
    >>> from sklearn.dummy import DummyClassifier, DummyRegressor
    >>> price = load(DummyRegressor().fit([[0.0], [1.0]], [2.5, 4.0]), node="m",
    ...              features=["x"])
    >>> vote = load(DummyClassifier().fit([[0.0], [1.0]], [False, True]), node="m",
    ...             features=["x"])
    >>> print(type_refusal(vote, price, width=1, node="fare", what="version 2 (vote.onnx)",
    ...                    stream="fares", live_name="live version 1"))
    ... # doctest: +NORMALIZE_WHITESPACE
    model node 'fare': version 2 (vote.onnx) is a classifier (boolean predictions, classes
    False, True) where live version 1 is a regressor (double predictions): stream 'fares'
    would change type; publish a regressor (double predictions), or score the classifier in a
    model node of its own, writing another stream; nothing sent
    """
    got, had = written(new, width), written(live, width)
    if got is None or had is None or got[0] == had[0]:
        return None
    head = f"model node {node!r}: {what}"
    tail = f": stream {stream!r} would change type; "
    ends = "; nothing sent"
    if _classifier(got) != _classifier(had):
        mine = "classifier" if _classifier(got) else "regressor"
        return (f"{head} is {_described(got)} where {live_name} is {_described(had)}{tail}"
                f"publish {_described(had)}, or score the {mine} in a model node of its own, "
                f"writing another stream{ends}")
    change = f"{head} makes {_shown(got)} where {live_name} makes {_shown(had)}{tail}"
    if had[1] is None:
        return f"{change}make it predict {had[0]} values as {live_name} does{ends}"
    return (f"{change}name its classes in the live type, in its order (--classes "
            f"{','.join(had[1])}), or export labels of the live type{ends}")


def _classifier(kind: tuple[str, list[str] | None]) -> bool:
    """Whether a model of these predictions is a classifier: it gives class probabilities,
    or its labels are not numbers."""
    return kind[1] is not None or kind[0] not in ("long", "double")


def _described(kind: tuple[str, list[str] | None]) -> str:
    """``a regressor (double predictions)``, ``a classifier (boolean predictions, classes
    False, True)``."""
    classes = "" if kind[1] is None else f", classes {', '.join(kind[1])}"
    return (f"a {'classifier' if _classifier(kind) else 'regressor'} ({kind[0]} predictions"
            f"{classes})")


def _shown(kind: tuple[str, list[str] | None]) -> str:
    return f"{kind[0]} predictions" + ("" if kind[1] is None else
                                       f" (classes {', '.join(kind[1])})")


def parse_classes(text: str) -> list[Any]:
    """The classes of ``--classes A,B,...``: each a boolean (True, False), an integer, a
    number, else a string.

    Examples
    --------
    >>> parse_classes("False,True"), parse_classes("0, 2"), parse_classes("low,high")
    ([False, True], [0, 2], ['low', 'high'])
    """
    return [_literal(item.strip()) for item in text.split(",")]


def _literal(item: str) -> Any:
    if item.lower() in ("true", "false"):
        return item.lower() == "true"
    for kind in (int, float):
        try:
            return kind(item)
        except ValueError:
            pass
    return item


def live_scorers(spec: Any, records: Sequence[Any], live: Iterable[int],
                 key: bytes | None) -> dict[int, Scorer]:
    """The loaded models of the ``live`` versions of model node ``spec``: the topology's
    model, or a published version put back together from its chunks in ``records`` (its
    versions stream; sealed with ``key``). A version that does not load here is left out."""
    scorers: dict[int, Scorer] = {}
    for version in set(live):
        try:
            if version == spec.version:
                scorers[version] = load(spec.model, node=spec.name, features=spec.features,
                                        classes=spec.classes)
                continue
            parts: dict[int, dict[str, Any]] = {}
            for r in records:
                if r.partition == 0 and r["action"] == "publish" and r["version"] == version:
                    whole = add_chunk(parts, r, node=spec.name, key=key)
                    if whole is not None:
                        scorers[version] = load_bytes(
                            whole["data"], whole["format"], node=spec.name, version=version,
                            features=spec.features, classes=stored_classes(whole["metadata"])
                            or spec.classes)
                        break
        except (ArtifactError, ModelLoadError):
            continue
    return scorers


def stored_classes(metadata: dict[str, str] | None) -> list[Any] | None:
    """The classes kept with a version (``--classes``), or None.

    >>> stored_classes({CLASSES_KEY: '[false, true]'}), stored_classes({})
    ([False, True], None)
    """
    text = (metadata or {}).get(CLASSES_KEY)
    return None if text is None else list(json.loads(text))
