"""A user's project on docker compose: what its image copies, and the ``Dockerfile.doa`` for it.

In doa's own repository ``doa compose`` builds from doa's ``Dockerfile`` (:func:`is_doa_source`).
Anywhere else the project (the folder ``doa compose`` runs in) gets a Dockerfile of its own,
``Dockerfile.doa`` (a name that leaves the project's own ``Dockerfile`` alone), with the same
two images, ``app`` and ``kafka``, and doa from its build context (:mod:`doa.deploy.source`).
The ``app`` image copies into ``/app`` what the topology needs, at the paths it has in the
project (:func:`layout`), so that ``doa deploy`` and ``doa run`` resolve paths in a container
as they do on the host: the folder that holds the topology module, its schema folder
wherever the topology says, and ``requirements.txt`` (installed, with the files it includes:
:mod:`doa.deploy.requirements`) when the project has one.

Examples
--------
>>> from pathlib import Path
>>> p = Project(Path("/p"), "pipelines/iot.py", ("pipelines", "avro"), "requirements.txt")
>>> text = dockerfile(p, "doa compose pipelines/iot.py", "doa-0.1.0-py3-none-any.whl")
>>> [line for line in text.splitlines() if line.startswith(("COPY", "FROM"))][:7]
... # doctest: +NORMALIZE_WHITESPACE
['FROM ${BASE_IMAGE} AS doa', 'COPY .doa/requirements.txt /opt/doa/requirements.txt',
 'COPY .doa/dist/doa-0.1.0-py3-none-any.whl /opt/doa/', 'FROM doa AS app',
 'COPY requirements.txt /app/requirements.txt', 'COPY pipelines /app/pipelines',
 'COPY avro /app/avro']
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from types import ModuleType

from doa.deploy.compose import Images
from doa.deploy.requirements import included
from doa.deploy.source import DIST, REQUIREMENTS, Source
from doa.errors import DoaError
from doa.topology.topology import Topology

DOCKERFILE = "Dockerfile.doa"
MARK = "# doa's two images for this project, written by `doa compose`"  # first line: ours
_PLAIN = re.compile(r"[A-Za-z0-9_.@+/-]+")


@dataclass(frozen=True)
class Project:
    """A project folder and what its image needs.

    Parameters
    ----------
    root : the project folder (the build context)
    topology : the topology as the containers name it (a path relative to ``root``, or a
        module), with ``:attr`` when one was given
    copies : what the image copies into ``/app``, relative to ``root``
    requirements : the project's ``requirements.txt`` (None: the project has none)
    included : the files it includes (``-r``, ``-c``; :mod:`doa.deploy.requirements`)
    """

    root: Path
    topology: str
    copies: tuple[str, ...]
    requirements: str | None = None
    included: tuple[str, ...] = ()


def is_doa_source(root: Path) -> bool:
    """Whether ``root`` is doa's own source tree (its Dockerfile builds doa from ``doa/``).

    >>> is_doa_source(Path(".")), is_doa_source(Path("topologies"))
    (True, False)
    """
    return ((root / "Dockerfile").is_file() and (root / "pyproject.toml").is_file()
            and (root / "doa" / "deploy" / "compose.py").is_file())


def layout(root: Path, spec: str, module: ModuleType, topology: Topology) -> Project:
    """What the image of the project ``root`` copies for the topology ``spec`` (``module`` and
    ``topology`` loaded from it): one line naming what lies outside ``root`` otherwise."""
    root = root.resolve()
    target, colon, attr = spec.partition(":")
    source = getattr(module, "__file__", None)
    if source is None:
        raise DoaError(f"topology {spec!r}: its module has no file to copy into the image")
    module_file = Path(source).resolve()
    inside = _relative(root, module_file, f"topology {spec!r}")
    if target.endswith(".py") or Path(target).exists():  # a file: the same relative path
        name = inside.as_posix() + (colon + attr if attr else "")
    else:  # a module: imported from /app, as from the project folder on the host
        name = spec
    copies = [inside.parts[0]]  # the top folder that holds it: its package, its siblings
    if topology.schema_dir is not None:
        schemas = _relative(root, topology.schema_dir.resolve(),
                            f"topology {spec!r}: its schema folder")
        if not schemas.parts:
            raise DoaError(f"topology {spec!r}: its schema folder is the project folder "
                           f"{root}: put the schemas in a folder of their own")
        if not any(schemas.is_relative_to(c) for c in copies):
            copies.append(schemas.as_posix())
    if not (root / "requirements.txt").is_file():
        return Project(root, name, tuple(copies))
    return Project(root, name, tuple(copies), "requirements.txt",
                   included(root, "requirements.txt"))


def _relative(root: Path, path: Path, what: str) -> PurePosixPath:
    """``path`` relative to ``root``, or one line saying it is outside it."""
    try:
        return PurePosixPath(path.relative_to(root).as_posix())
    except ValueError:
        raise DoaError(f"{what} is {path}, outside the project folder {root}: run doa "
                       "compose from the folder that holds it (the image copies the "
                       "project's files only)") from None


def dockerfile(project: Project, command: str, wheel: str | None = None,
               requirement: str | None = None) -> str:
    """The text of ``Dockerfile.doa``: doa from ``.doa/dist/WHEEL`` or the pip ``requirement``."""
    copied = ", ".join(project.copies)
    lines = [
        MARK + ":",
        f"#   {command}",
        "# docker-compose.yml builds both; change the command or the project, not this file.",
        "#   app    doa and its dependencies in /opt/venv"
        + (", the project's requirements.txt" if project.requirements else "") + ",",
        f"#          the project's {copied} in /app (the paths the topology has on the host),",
        "#          a non-root user; the entrypoint is `doa`.",
        "#   kafka  doa, a Java 17 runtime and Apache Kafka (jars from Maven Central at build",
        "#          time): one KRaft node on the compose network, for demos and tests.",
        "# BASE_IMAGE: a Debian bookworm image with python3 and python3-venv (one that has doa's",
        "# dependencies in /opt/venv already, as these images do, makes the build quick).",
        "ARG BASE_IMAGE=python:3.11-slim-bookworm",
        "",
        "FROM ${BASE_IMAGE} AS doa",
        "USER root",
        "ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1",
        "RUN (test -x /opt/venv/bin/python || python3 -m venv /opt/venv) \\",
        "    && (id -u doa >/dev/null 2>&1 || useradd --system --uid 10001 --create-home \\",
        "        --home-dir /home/doa --shell /usr/sbin/nologin doa) \\",
        "    && mkdir -p /var/cache/numba && chown doa /var/cache/numba",
        "# doa's dependencies first: a layer that survives changes of doa's code and the project's",
        f"COPY {REQUIREMENTS} /opt/doa/requirements.txt",
        "RUN /opt/venv/bin/pip install --quiet -r /opt/doa/requirements.txt",
    ]
    if wheel is not None:
        lines += [f"COPY {DIST}/{wheel} /opt/doa/",
                  "RUN /opt/venv/bin/pip install --quiet --no-deps --force-reinstall "
                  f"/opt/doa/{wheel}"]
    elif requirement is not None:
        lines += ["RUN " + json.dumps(["/opt/venv/bin/pip", "install", "--quiet", requirement])]
    else:
        raise DoaError("Dockerfile.doa needs doa: a wheel or a pip requirement")
    lines += ["ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 NUMBA_CACHE_DIR=/var/cache/numba",
              "", "FROM doa AS app"]
    if project.requirements:
        lines += [*(_copy(f) for f in (project.requirements, *project.included)),
                  "RUN /opt/venv/bin/pip install --quiet -r /app/requirements.txt"]
    lines += ["WORKDIR /app", *(_copy(c) for c in project.copies),
              "USER doa", 'ENTRYPOINT ["doa"]', 'CMD ["--help"]', "", *_KAFKA]
    return "\n".join(lines) + "\n"


def _copy(path: str) -> str:
    """A COPY of ``path`` to the same path under /app (JSON form when it needs quoting).

    >>> _copy("pipelines"), _copy("my schemas")
    ('COPY pipelines /app/pipelines', 'COPY ["my schemas", "/app/my schemas"]')
    """
    if _PLAIN.fullmatch(path):
        return f"COPY {path} /app/{path}"
    return "COPY " + json.dumps([path, f"/app/{path}"])


_KAFKA = [
    "FROM doa AS jre",
    "RUN apt-get update -qq \\",
    "    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \\",
    "       openjdk-17-jre-headless >/dev/null \\",
    "    && rm -rf /var/lib/apt/lists/*",
    "",
    "FROM jre AS kafka-build",
    "RUN apt-get update -qq \\",
    "    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends maven \\",
    "       >/dev/null",
    "ENV DOA_KAFKA_CACHE=/opt/kafka",
    "RUN python -c 'from doa.local.apache_kafka import assemble; print(assemble().root)' \\",
    "    && rm -rf /opt/kafka/*/libs.partial /root/.m2 && chmod -R a+rX /opt/kafka",
    "",
    "FROM jre AS kafka",
    "COPY --from=kafka-build /opt/kafka /opt/kafka",
    "ENV DOA_KAFKA_CACHE=/opt/kafka",
    "# the logs stay in the container: a restart of it (docker kill, docker start) keeps the "
    "streams",
    "RUN mkdir -p /var/lib/doa-kafka && chown doa /var/lib/doa-kafka",
    "USER doa",
    "EXPOSE 9092",
    "HEALTHCHECK --interval=2s --timeout=3s --start-period=60s --retries=30 \\",
    '    CMD ["python", "-c", "from doa.local.embedded import api_versions; '
    "api_versions('127.0.0.1:9092')\"]",
    'ENTRYPOINT ["doa", "broker", "--kafka", "--port", "9092", "--listen", "0.0.0.0", \\',
    '            "--advertise", "kafka:9092", "--data", "/var/lib/doa-kafka"]',
]


def write(project: Project, text: str | None) -> str:
    """Write ``Dockerfile.doa`` (``text``; None: only check) into the project; refuse to
    replace a file of that name that doa did not write. The file's name."""
    path = project.root / DOCKERFILE
    if path.exists() and not _ours(path):
        raise DoaError(f"{path} exists and doa did not write it: move it away, or run doa "
                       "compose elsewhere (doa writes its images' Dockerfile there)")
    if text is not None:
        path.write_text(text)
    return DOCKERFILE


def _ours(path: Path) -> bool:
    try:
        with path.open() as f:
            first = f.readline()
    except (OSError, UnicodeDecodeError):
        return False
    return first.startswith(MARK)


def prepare(root: Path, spec: str, module: ModuleType, topology: Topology, compose_dir: Path,
            command: str, wheel: str | None = None,
            requirement: str | None = None) -> tuple[Project, Images, list[str], Source]:
    """Everything a project's compose file needs besides itself: ``Dockerfile.doa`` and doa
    in the build context. The project, its images for :func:`doa.deploy.compose.compose_file`
    (the compose file goes in ``compose_dir``), the files written, and where doa came from."""
    import shutil
    import tempfile

    from doa.deploy.compose import project_name
    from doa.deploy.source import resolve, stage

    project = layout(root, spec, module, topology)
    write(project, None)  # a Dockerfile.doa doa did not write: refused before any build
    build_dir = Path(tempfile.mkdtemp(prefix="doa-wheel-"))
    try:
        source = resolve(wheel, requirement, build_dir)
        text = dockerfile(project, command, source.wheel.name if source.wheel else None,
                          source.requirement)
        written = [write(project, text)]
        written += stage(source, project.root)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    name = project_name(topology)
    context = Path(os.path.relpath(project.root, compose_dir.resolve())).as_posix()
    images = Images(app=f"{name}-doa:latest", kafka=f"{name}-doa-kafka:latest",
                    dockerfile=DOCKERFILE, context=context, folders=())
    return project, images, written, source
