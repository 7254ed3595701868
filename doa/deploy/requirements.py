"""A project's ``requirements.txt`` as its image installs it: the files it includes, and the
lines an image cannot install.

The ``app`` image of ``doa compose`` (:mod:`doa.deploy.project`) copies ``requirements.txt``
and runs ``pip install -r`` on it before it copies the project's code. A line ``-r dev.txt``
(or ``-c constraints.txt``) names another file: it is copied too, at its path in the project,
so pip finds it where it looks (beside the file that names it). A line that installs from the
project folder itself (``-e .``, ``.``, ``./lib``, ``file:...``) cannot work there: the
project is not in the image yet, and only the topology's folders are copied; such a line is
refused in one line before anything is built, saying what to write instead.

Examples
--------
>>> import tempfile
>>> from pathlib import Path
>>> root = Path(tempfile.mkdtemp())
>>> _ = (root / "requirements.txt").write_text("river==0.22  # the model\\n-r extra/ml.txt\\n")
>>> (root / "extra").mkdir()
>>> _ = (root / "extra" / "ml.txt").write_text("-c ../pins.txt\\nscikit-learn\\n")
>>> _ = (root / "pins.txt").write_text("numpy<3\\n")
>>> included(root, "requirements.txt")
('extra/ml.txt', 'pins.txt')
>>> _ = (root / "requirements.txt").write_text("-e .\\n")
>>> included(root, "requirements.txt")
Traceback (most recent call last):
...
doa.errors.DoaError: requirements.txt line 1: `-e .` installs from the project folder, which \
the image does not hold when it installs the requirements (it copies the topology's folders \
after them, into /app, where the nodes import them from): list the project's dependencies \
instead of the project
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from doa.errors import DoaError

_INCLUDE = re.compile(r"^(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?=[^\s-]))(\S+)$")
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_LOCAL = re.compile(r"^(?:-e|--editable)(?:\s*=\s*|\s+)|^(?:\.{1,2}(?:/|$)|/|file:)")


def included(root: Path, name: str) -> tuple[str, ...]:
    """The files ``root / name`` includes (``-r``, ``-c``), and theirs, as paths relative to
    ``root`` in the order met; a one-line :class:`~doa.errors.DoaError` for a line that
    installs from the project folder, or a file outside ``root`` or missing."""
    found: list[str] = []
    _walk(root.resolve(), PurePosixPath(name), found, seen={name})
    return tuple(found)


def _walk(root: Path, name: PurePosixPath, found: list[str], seen: set[str]) -> None:
    for number, raw in enumerate((root / name).read_text().splitlines(), 1):
        line = _strip(raw)
        if not line:
            continue
        where = f"{name} line {number}: `{line}`"
        if _LOCAL.match(line):
            raise DoaError(f"{where} installs from the project folder, which the image does "
                           "not hold when it installs the requirements (it copies the "
                           "topology's folders after them, into /app, where the nodes import "
                           "them from): list the project's dependencies instead of the project")
        match = _INCLUDE.match(line)
        if match is None:
            continue
        target = (root / name.parent / match.group(1)).resolve()
        try:
            inside = PurePosixPath(target.relative_to(root).as_posix())
        except ValueError:
            raise DoaError(f"{where} names {target}, outside the project folder {root}: the "
                           "image copies the project's files only; move it into the "
                           "project") from None
        if not target.is_file():
            raise DoaError(f"{where} names {inside}, which is not in the project")
        if str(inside) not in seen:
            seen.add(str(inside))
            found.append(str(inside))
            _walk(root, inside, found, seen)


def _strip(line: str) -> str:
    """A requirements line without its comment (``#`` at the start or after whitespace, as
    pip reads it: ``pkg @ https://host/x.whl#sha256=...`` keeps its ``#``)."""
    return _COMMENT.sub("", line).strip()
