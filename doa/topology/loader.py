"""Find a topology from what a person types: a file path, a module, ``module:attr``.

Every failure is a :class:`DoaError` with a one-line message: a missing file, a file that
does not parse, an import that fails, a module without a ``Topology``.

Examples
--------
>>> load_topology("topologies/sensors.py").name
'sensors'
>>> load_topology("topologies.sensors:topology").name
'sensors'
>>> load_topology("topologies.sensors:topo")
Traceback (most recent call last):
...
doa.errors.DoaError: 'topologies.sensors' has no Topology named 'topo' (found: topology)
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

from doa.errors import DoaError
from doa.pickles import PREFIX
from doa.topology.topology import Topology


def load_topology(spec: str) -> Topology:
    """Load the ``Topology`` named by ``spec`` (``path.py[:attr]`` or ``module[:attr]``)."""
    return load(spec)[1]


def load(spec: str) -> tuple[ModuleType, Topology]:
    """Load the module and the ``Topology`` named by ``spec``."""
    target, _, attr = spec.partition(":")
    attr = attr or "topology"
    path = Path(target)
    # Like `python -m`: modules (and the modules a topology file imports) resolve from here.
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    if target.endswith(".py") or path.exists():
        module = _load_file(target, path)
    else:
        module = _import(target)
    found = getattr(module, attr, None)
    if not isinstance(found, Topology):
        names = [k for k, v in vars(module).items() if isinstance(v, Topology)]
        what = "" if found is None else f"{attr!r} is of type {type(found).__name__}; "
        raise DoaError(f"{target!r} has no Topology named {attr!r} "
                       f"({what}found: {', '.join(names) or 'no Topology'})")
    return module, found


def topology_module_name(path: Path) -> str:
    """The module name a topology file is imported under: the same in every process (a state
    or model whose class the file defines is pickled with it and unpickled by another run; a
    salted ``hash()`` made it differ from run to run), and naming the file, so that
    :func:`doa.pickles.loads` finds the class when the file has moved.

    >>> topology_module_name(Path("/srv/app/fraud-v2.py"))
    '_doa_topology_fraud_v2_a989b2150aadc41c'
    """
    stem = re.sub(r"\W", "_", path.stem)
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return f"{PREFIX}{stem}_{digest}"


def _load_file(target: str, path: Path) -> ModuleType:
    if path.is_dir():
        raise DoaError(f"{target!r} is a directory, not a topology file")
    if not path.is_file():
        raise DoaError(f"topology file {target!r} not found")
    module_name = topology_module_name(path)
    # An absolute file name in the code objects: errors name the user's file wherever it ran.
    loader_spec = importlib.util.spec_from_file_location(module_name, path.resolve())
    if loader_spec is None or loader_spec.loader is None:
        raise DoaError(f"cannot import {target!r} as a Python file")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(module_name, None)  # no half-initialised module left behind
        if isinstance(exc, DoaError) or not isinstance(exc, Exception):
            raise
        raise _import_failure(f"topology file {target!r}", exc) from exc
    return module


def _import(target: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except DoaError:
        raise
    except ModuleNotFoundError as exc:
        if exc.name is not None and (target == exc.name or target.startswith(exc.name + ".")):
            raise DoaError(f"no topology file or module {target!r} ({exc})") from exc
        raise _import_failure(f"topology module {target!r}", exc) from exc
    except Exception as exc:
        raise _import_failure(f"topology module {target!r}", exc) from exc


def _import_failure(what: str, exc: Exception) -> DoaError:
    if isinstance(exc, SyntaxError):
        where = f"{Path(exc.filename).name}, " if exc.filename else ""
        return DoaError(f"{what} does not parse: {exc.msg} ({where}line {exc.lineno})")
    return DoaError(f"{what} failed to import: {type(exc).__name__}: {exc}{_where(exc)}")


def _where(exc: BaseException) -> str:
    """`` (file.py, line N)``: the innermost frame of ``exc`` outside doa's and Python's own
    import machinery (the user's line), or nothing.

    >>> try:
    ...     exec(compile("x = 1\\nundefined_name", "topo.py", "exec"))
    ... except NameError as e:
    ...     _where(e)
    ' (topo.py, line 2)'
    """
    import traceback

    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if "importlib" not in f.filename and not f.filename.startswith("<frozen")
              and f.filename != __file__]
    return f" ({Path(frames[-1].filename).name}, line {frames[-1].lineno})" if frames else ""
