"""What a ``doa`` command imports before it runs: not numpy (nor the model, learner or
engine packages that bring it), so `doa --help`, `doa catalog` or `doa dlq` do not pay for
them at start (the pricing walk measured 5-7 s per model command and 12.9 s for a catalog on a
busy machine, most of it imports)."""

from __future__ import annotations

import subprocess
import sys


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
