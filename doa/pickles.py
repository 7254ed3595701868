"""Unpickle what a node saved (snapshots, model versions) in another process.

A topology file is imported under a module name of doa's making
(:func:`doa.topology.loader.module_name`): a state or model whose class is defined in that file
is pickled with that name. The name is the same in every process for the same file, and
:func:`loads` also finds such a class when the file has moved (a project checked out
elsewhere, a container's ``/app``): a module of that kind that is not loaded is taken to be the
topology module loaded here with the same file name, or the only one loaded.

Examples
--------
>>> import pickle, sys, types
>>> mod = types.ModuleType("_doa_topology_pickles_example_0123456789abcdef")
>>> exec("class Example:\\n    pass", mod.__dict__)
>>> mod.Example.__module__ = mod.__name__
>>> sys.modules[mod.__name__] = mod
>>> data = pickle.dumps(mod.Example()).replace(b"0123456789abcdef", b"fedcba9876543210")
>>> type(loads(data)).__name__  # written where the file was elsewhere: found by its name
'Example'
>>> del sys.modules[mod.__name__]
"""

from __future__ import annotations

import io
import pickle
import sys
from typing import Any

PREFIX = "_doa_topology_"


def _stem(module: str) -> str:
    """The file name part of a topology module name (``_doa_topology_STEM_HASH``)."""
    return module[len(PREFIX):].rpartition("_")[0]


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module.startswith(PREFIX) and module not in sys.modules:
            loaded = [m for m in sys.modules if m.startswith(PREFIX)]
            same = [m for m in loaded if _stem(m) == _stem(module)]
            if len(same) == 1 or len(loaded) == 1:
                module = (same or loaded)[0]
        return super().find_class(module, name)


def loads(data: bytes) -> Any:
    """``pickle.loads``, finding classes of a topology file loaded here from another path."""
    return _Unpickler(io.BytesIO(data)).load()
