"""The refusal of a model version that predicts another type than the live one gives the fix
that fits the case.

Publishing a classifier onto a model node whose live version is a regressor was refused with
"name its classes in the live type, in its order, or export labels of the live type": there
are no classes to name in a ``double``. The line now says the version is a classifier and
the live one a regressor (their prediction types), and what to do instead: publish a
regressor, or score the classifier in a node of its own. Two classifiers whose classes have
other types keep the ``--classes`` advice.
"""

from __future__ import annotations

from sklearn.dummy import DummyClassifier, DummyRegressor

from doa.model.compat import type_refusal
from doa.model.formats import load

X = [[0.0], [1.0]]


def refusal(new: object, live: object) -> str | None:
    return type_refusal(load(new, node="fare", features=["km"]),
                        load(live, node="fare", features=["km"]), width=1, node="fare",
                        what="version 2 (model.joblib)", stream="fares",
                        live_name="live version 1")


def test_a_classifier_onto_a_regressor_names_both_kinds_and_not_classes() -> None:
    line = refusal(DummyClassifier().fit(X, [False, True]), DummyRegressor().fit(X, [2.5, 4.0]))
    assert line == (
        "model node 'fare': version 2 (model.joblib) is a classifier (boolean predictions, "
        "classes False, True) where live version 1 is a regressor (double predictions): "
        "stream 'fares' would change type; publish a regressor (double predictions), or "
        "score the classifier in a model node of its own, writing another stream; nothing "
        "sent")
    assert "--classes" not in line


def test_a_regressor_onto_a_classifier_says_so() -> None:
    line = refusal(DummyRegressor().fit(X, [2.5, 4.0]), DummyClassifier().fit(X, ["lo", "hi"]))
    assert line == (
        "model node 'fare': version 2 (model.joblib) is a regressor (double predictions) "
        "where live version 1 is a classifier (string predictions, classes hi, lo): stream "
        "'fares' would change type; publish a classifier (string predictions, classes hi, "
        "lo), or score the regressor in a model node of its own, writing another stream; "
        "nothing sent")


def test_two_classifiers_keep_the_classes_advice_and_one_type_passes() -> None:
    line = refusal(DummyClassifier().fit(X, [0, 1]), DummyClassifier().fit(X, [False, True]))
    assert line == (
        "model node 'fare': version 2 (model.joblib) makes long predictions (classes 0, 1) "
        "where live version 1 makes boolean predictions (classes False, True): stream 'fares' "
        "would change type; name its classes in the live type, in its order (--classes "
        "False,True), or export labels of the live type; nothing sent")
    assert refusal(DummyRegressor().fit(X, [1.0, 2.0]), DummyRegressor().fit(X, [3.0, 4.0])) \
        is None
