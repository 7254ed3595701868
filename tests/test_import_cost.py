"""What a ``doa`` command imports before it runs: not numpy (nor the model, learner or
engine packages that bring it), so `doa --help`, `doa catalog` or `doa dlq` do not pay for
them at start (the pricing walk measured 5-7 s per model command and 12.9 s for a catalog on a
busy machine, most of it imports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_the_cli_and_the_package_import_no_numpy() -> None:
    code = ("import sys, doa, doa.cli.app; "
            "print(sorted(m for m in ('numpy', 'river', 'numba', 'doa.model', 'doa.learner', "
            "'doa.engines.kafka') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]", done.stdout


def test_doa_labels_and_promote_load_on_first_use() -> None:
    import doa
    from doa.model.labels import Labels, Promote

    assert doa.Labels is Labels and doa.Promote is Promote


def test_declaring_a_learner_imports_no_numba_nor_river_modules_its_model_does_not_use() -> None:
    """Every topology declaring a learner asks whether its model compiles: with numba and
    ``river.preprocessing`` imported for the question, a ``doa check`` of a learner topology
    took 2.6 s (1.8 s without) and twice the memory. The answer is still given: a bare
    LogisticRegression with its feature order compiles, a tree does not, and a scaled
    pipeline (whose module the user imported) compiles too."""
    code = (
        "import sys\n"
        "from river import linear_model, metrics, tree\n"
        "from doa import Topology\n"
        "def compiled(model):\n"
        "    t = Topology('learning', schemas='tests/schemas')\n"
        "    t.stream('features', schema='testing.Phish')\n"
        "    t.stream('labels', schema='testing.PhishLabel')\n"
        "    t.stream('predictions', schema='doa.Prediction')\n"
        "    t.learner('model', features='features', labels='labels', model=model,\n"
        "              predictions='predictions', metric=metrics.Accuracy(), join='id',\n"
        "              label='label', feature_fields=['https'])\n"
        "    return t.nodes['model'].options['compiled']\n"
        "answers = [compiled(linear_model.LogisticRegression()),\n"
        "           compiled(tree.HoeffdingTreeClassifier())]\n"
        "print(answers, sorted(m for m in ('numba', 'river.preprocessing', 'river.anomaly')\n"
        "                      if m in sys.modules))\n"
        "from river import preprocessing\n"
        "print(compiled(preprocessing.StandardScaler() | linear_model.LogisticRegression()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=str(Path(__file__).resolve().parent.parent))
    assert done.stdout.split("\n")[:2] == ["[True, False] []", "True"], done.stdout
