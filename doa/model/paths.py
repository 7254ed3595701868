"""Where a model node's relative model path points: the topology file's folder, like ``schemas=``.

A relative ``model="models/v1.joblib"`` resolves against the folder of the file that creates the
topology (:attr:`doa.topology.Topology.folder`), so a topology runs from any directory. A path
that exists only relative to the working directory (the rule before) still loads, with a
one-line warning on doa's logger (``doa`` commands show it on stderr).

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> folder = Path(tempfile.mkdtemp())
>>> (folder / "v1.joblib").write_bytes(b"")
0
>>> resolve("v1.joblib", folder, "price") == folder / "v1.joblib"
True
>>> resolve("nowhere.joblib", folder, "price")
'nowhere.joblib'
>>> missing("nowhere.joblib", folder, "price").startswith("model 'price': model file")
True
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

__all__ = ["missing", "resolve"]

log = logging.getLogger(__name__)


def resolve(model: Any, folder: Path | None, node: str) -> Any:
    """``model`` with a relative file path made absolute: against ``folder`` when the file is
    there, else against the working directory (warning that this is deprecated); unchanged when
    it is an object, an absolute path, or a file found in neither place (:func:`missing` says
    it)."""
    if not isinstance(model, (str, Path)) or Path(model).is_absolute() or folder is None:
        return model
    beside = folder / model
    if beside.is_file():
        return beside
    here = Path.cwd() / model
    if here.is_file():
        log.warning("model %r: model file %r was found in the working directory %s, not in the "
                    "topology's folder %s; deprecated: relative model paths will resolve against "
                    "the topology's folder only, like schemas=", node, str(model), Path.cwd(),
                    folder)
        return here
    return model


def missing(model: str | Path, folder: Path | None, node: str) -> str:
    """What ``doa check`` and the node say of a model file found nowhere, naming every place
    looked in."""
    if Path(model).is_absolute():
        where = ""
    elif folder is None:
        where = f" (in the working directory {Path.cwd()})"
    else:
        where = (f" in the topology's folder {folder} (where relative paths resolve) nor in the "
                 f"working directory {Path.cwd()}")
    return f"model {node!r}: model file {str(model)!r} does not exist{where}"
