"""Where a project's image gets doa from: a wheel in the build context, or a pip requirement.

doa is not on a public index, so ``doa compose`` in a user's project puts doa into the build
context itself (:func:`resolve`, :func:`stage`), in this order:

- ``--doa-requirement SPEC``: a pip requirement the image installs as given (``doa==0.2.0``
  from your own index, ``doa @ git+https://host/doa.git@v0.2.0``);
- ``--doa-wheel FILE``: that wheel, copied;
- otherwise the running doa, as its ``direct_url.json`` (PEP 610) says it was installed: from a
  directory (editable or not) it is built with ``pip wheel --no-deps`` from that directory;
  from a wheel file that still exists, the file is copied. Anything else (an index, a VCS
  URL, a directory that is gone) is one line saying what to pass instead.

The image installs doa's dependencies first, from ``.doa/requirements.txt`` (the wheel's own
``Requires-Dist`` with the ``ui`` and ``metrics`` extras, :func:`requirements`), then doa
without them: a layer that survives changes of doa's code and of the project's.

Examples
--------
>>> requirements(["click>=8.3", 'aiohttp>=3.9; extra == "ui"', 'pyarrow>=17; extra == "data"',
...               'x; python_version < "3.11" and extra == "metrics"'])
['click>=8.3', 'aiohttp>=3.9', 'x; python_version < "3.11"']
>>> resolve(requirement="doa==0.2.0").describe()
'pip requirement doa==0.2.0'
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from email.parser import Parser
from importlib import metadata
from pathlib import Path
from urllib.parse import unquote, urlparse

from doa.errors import DoaError

EXTRAS = ("ui", "metrics")  # what the services use: doa ui, and /metrics on every node
DIST = ".doa/dist"  # the wheel, in the build context
REQUIREMENTS = ".doa/requirements.txt"  # doa's own dependencies, one layer of their own
PASS = "pass --doa-wheel FILE (a doa wheel) or --doa-requirement SPEC (a pip requirement)"
_NOT_SOURCE = (".git", ".hg", "build", "dist", "*.egg-info", "__pycache__", "*.pyc", ".venv",
               "venv", ".tox", ".nox", ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
               "node_modules")
_EXTRA = re.compile(r"""\s*\(?\s*extra\s*==\s*["']([^"']+)["']\s*\)?\s*""")


@dataclass(frozen=True)
class Source:
    """doa for the image: a wheel file to copy into the context, or a requirement to install.

    Parameters
    ----------
    wheel : a wheel file on this machine (None: ``requirement`` instead)
    requirement : a pip requirement the image installs (None: ``wheel`` instead)
    built_from : the source directory the wheel was built from (None: not built here)
    """

    wheel: Path | None = None
    requirement: str | None = None
    built_from: Path | None = None

    def describe(self) -> str:
        """One phrase for the terminal: where the image's doa comes from."""
        if self.requirement is not None:
            return f"pip requirement {self.requirement}"
        assert self.wheel is not None
        return f"built from {self.built_from}" if self.built_from else f"copied from {self.wheel}"


def resolve(wheel: str | None = None, requirement: str | None = None,
            build_dir: Path | None = None) -> Source:
    """Where doa comes from: ``requirement``, ``wheel``, or the running doa (built into
    ``build_dir`` when it was installed from a directory)."""
    if wheel and requirement:
        raise DoaError("--doa-wheel and --doa-requirement: give one of them")
    if requirement is not None:
        if not requirement.strip() or requirement.lstrip().startswith("-"):
            raise DoaError(f"--doa-requirement {requirement!r}: expected a pip requirement "
                           "(doa==0.2.0, doa @ git+https://host/doa.git@v0.2.0)")
        return Source(requirement=requirement.strip())
    if wheel is not None:
        return Source(wheel=check_wheel(Path(wheel), "--doa-wheel"))
    return running(build_dir)


def check_wheel(path: Path, what: str) -> Path:
    """``path`` if it is a doa wheel, else a one-line error naming ``what`` gave it.

    >>> check_wheel(Path("nope.whl"), "--doa-wheel")
    Traceback (most recent call last):
    doa.errors.DoaError: --doa-wheel nope.whl: no such file
    """
    if not path.is_file():
        raise DoaError(f"{what} {path}: no such file")
    name = _wheel_metadata(path, what)[0]
    if name.lower() != "doa":
        raise DoaError(f"{what} {path}: a wheel of {name or 'no project'!r}, not of doa")
    return path


def _wheel_metadata(path: Path, what: str) -> tuple[str, list[str]]:
    """The project name and the ``Requires-Dist`` lines of a wheel's ``METADATA``."""
    try:
        with zipfile.ZipFile(path) as archive:
            found = [n for n in archive.namelist()
                     if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
            if not found:
                raise DoaError(f"{what} {path}: not a wheel (no *.dist-info/METADATA)")
            text = archive.read(found[0]).decode()
    except (zipfile.BadZipFile, OSError) as exc:
        raise DoaError(f"{what} {path}: not a wheel ({exc})") from exc
    message = Parser().parsestr(text, headersonly=True)
    return str(message.get("Name", "")), [str(v) for v in message.get_all("Requires-Dist") or []]


def running(build_dir: Path | None = None) -> Source:
    """The running doa as a wheel: built from the directory it was installed from, or the
    wheel file it was installed from; else an error saying what to pass."""
    dist = _installed()
    direct = dist.read_text("direct_url.json")
    version = dist.version
    if direct is None:
        raise DoaError(f"the running doa {version} was installed from an index, not from a "
                       f"directory or a wheel doa can copy: {PASS}, e.g. "
                       f"--doa-requirement doa=={version} with your index")
    info = json.loads(direct)
    url = str(info.get("url", ""))
    if "vcs_info" in info:
        commit = info["vcs_info"].get("commit_id", "")
        spec = f"doa @ {info['vcs_info'].get('vcs', 'git')}+{url}" + (f"@{commit}" if commit
                                                                     else "")
        raise DoaError(f"the running doa {version} was installed from {url}: {PASS}, e.g. "
                       f"--doa-requirement '{spec}'")
    path = _file_path(url)
    if "dir_info" in info and path is not None:
        if not (path / "pyproject.toml").is_file() and not (path / "setup.py").is_file():
            raise DoaError(f"the running doa {version} was installed from {path}, which has "
                           f"no pyproject.toml any more: {PASS}")
        return Source(wheel=build_wheel(path, build_dir), built_from=path)
    if path is not None and path.suffix == ".whl":
        if not path.is_file():
            raise DoaError(f"the running doa {version} was installed from {path}, which is "
                           f"gone: {PASS}")
        return Source(wheel=check_wheel(path, "the running doa's wheel"))
    raise DoaError(f"the running doa {version} was installed from {url or 'an archive'}, "
                   f"not from a directory or a wheel: {PASS}")


def _installed() -> metadata.Distribution:
    """The distribution the running doa was installed as (by an installer: it has a RECORD;
    a source tree's ``doa.egg-info`` found on the path first is not it)."""
    found = [d for d in metadata.distributions(name="doa")]
    installed = [d for d in found if d.read_text("RECORD") is not None]
    if not installed:
        raise DoaError("the running doa was not installed by pip (no RECORD in its metadata): "
                       + PASS)
    return installed[0]


def _file_path(url: str) -> Path | None:
    """The local path of a ``file://`` URL (None for any other URL).

    >>> _file_path("file:///work/my%20doa"), _file_path("https://host/doa.whl")
    (PosixPath('/work/my doa'), None)
    """
    parsed = urlparse(url)
    return Path(unquote(parsed.path)) if parsed.scheme == "file" else None


def build_wheel(source: Path, build_dir: Path | None = None) -> Path:
    """``pip wheel --no-deps`` of ``source`` into ``build_dir`` (a new temporary directory by
    default); the wheel's path, or one line with pip's last words.

    It builds a copy of ``source`` (without VCS data, caches and build outputs): setuptools
    writes ``build/`` into the tree it builds, and a module deleted from the sources but left
    in an old ``build/lib`` would end up in the wheel.
    """
    out = build_dir or Path(tempfile.mkdtemp(prefix="doa-wheel-"))
    with tempfile.TemporaryDirectory(prefix="doa-src-") as scratch:
        tree = Path(scratch) / source.name
        shutil.copytree(source, tree, symlinks=True, ignore=shutil.ignore_patterns(*_NOT_SOURCE))
        done = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet",
             "--disable-pip-version-check", "--wheel-dir", str(out), str(tree)],
            capture_output=True, text=True, check=False, env=_reproducible())
    wheels = sorted(out.glob("doa-*.whl"))
    if done.returncode != 0 or not wheels:
        last = (done.stderr.strip().splitlines() or ["no wheel written"])[-1]
        raise DoaError(f"pip wheel {source} failed ({last.strip()}): fix the build, or {PASS}")
    return wheels[-1]


def _reproducible() -> dict[str, str]:
    """pip's environment with a fixed ``SOURCE_DATE_EPOCH``: the same sources give the same
    wheel bytes, so the image layer that installs it stays cached."""
    import os

    return {**os.environ, "SOURCE_DATE_EPOCH": os.environ.get("SOURCE_DATE_EPOCH",
                                                              "315532800")}


def requirements(requires: Sequence[str], extras: Sequence[str] = EXTRAS) -> list[str]:
    """The ``Requires-Dist`` lines an install with ``extras`` needs, markers kept, the extra
    clause taken out (pip evaluates the rest in the image)."""
    out = []
    for line in requires:
        requirement, _, marker = line.partition(";")
        found = _EXTRA.search(marker)
        if found is None:
            out.append(line.strip())
            continue
        if found.group(1) not in extras:
            continue
        rest = (marker[:found.start()] + marker[found.end():]).strip()
        rest = re.sub(r"^and\s+|\s+and$", "", rest).strip()
        out.append(f"{requirement.strip()}; {rest}" if rest else requirement.strip())
    return out


def stage(source: Source, root: Path) -> list[str]:
    """Put doa into the build context ``root``: its wheel in ``.doa/dist`` (older doa wheels
    there removed) and its dependencies in ``.doa/requirements.txt``; the files written."""
    dist = root / DIST
    dist.mkdir(parents=True, exist_ok=True)
    for old in dist.glob("doa-*.whl"):
        if source.wheel is None or old.name != source.wheel.name:
            old.unlink()
    if source.wheel is not None:
        target = dist / source.wheel.name
        if source.wheel.resolve() != target.resolve():
            shutil.copyfile(source.wheel, target)
        requires = _wheel_metadata(target, "the wheel")[1]
    else:  # the running doa's: the requirement installs its own on top
        requires = list(metadata.distribution("doa").requires or [])
    lines = requirements(requires)
    text = ("# doa's dependencies (from its wheel's metadata, extras: "
            f"{', '.join(EXTRAS)}); written by doa compose\n" + "".join(f"{r}\n" for r in lines))
    (root / REQUIREMENTS).write_text(text)
    return [REQUIREMENTS] + ([f"{DIST}/{source.wheel.name}"] if source.wheel else [])
