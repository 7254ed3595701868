"""A docker-compose file for a topology: Kafka, a one-shot prepare, one service per node group.

:func:`compose_file` writes the text that ``doa compose TOPOLOGY`` prints. Its services:

- ``kafka``: Apache Kafka (KRaft, one node) from the Dockerfile's ``kafka`` target, listening
  on ``0.0.0.0:9092`` and advertised as ``kafka:9092`` on the compose network, with a
  healthcheck. Left out when the services use an existing cluster (``broker``).
- ``prepare``: ``doa deploy TOPOLOGY`` once: topics with their partitions, schemas registered
  (compatibility-checked), then it exits; everything else waits for it to succeed.
- one service per node group (:class:`Group`: ``doa run TOPOLOGY --nodes a,b``); a group scales
  (``docker compose up --scale NAME=N``) up to the partitions of the streams it reads, the
  unit of parallelism and of state, since a node's state lives on its state topic; each
  replica serves Prometheus metrics on port 9100 of the compose network;
- ``ui`` (profile ``ui``): ``doa ui`` on the host's loopback port 8765;
- ``source``: the topology's demo source, published once (``doa deploy --publish-demo N``),
  when the module defines ``demo_source``.

The nodes use a production consumer session (10 s rather than the 3 s doa's tests use, so a
slow container is not thrown out of its group) and 30 s to stop (doa's own bound is 10 s).
The text is built here, without a YAML library, in a fixed order: the same topology and options
give the same bytes, so a committed file can be checked for staleness.

Examples
--------
>>> from doa.topology.loader import load_topology
>>> t = load_topology("topologies/sensors.py")
>>> [g.name for g in groups(t, ["alerts=flag_spikes"])]
['alerts']
>>> text = compose_file(t, "topologies/sensors.py", groups(t, []))
>>> start = text.index("  flag_spikes:")
>>> print(text[start:text.index("    command:", start)].rstrip())
  flag_spikes:  # flag_spikes: at most 4 replicas (partitions)
    image: doa:latest
    pull_policy: never  # built once, by prepare
>>> text[text.index("    command:", start):].splitlines()[0].split(", ")[1:4]
['"topologies/sensors.py"', '"--nodes"', '"flag_spikes"']
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from doa.errors import DoaError
from doa.topology.topology import Topology

APP_IMAGE = "doa:latest"
KAFKA_IMAGE = "doa-kafka:latest"
BASE = "${DOA_BASE_IMAGE:-python:3.11-slim-bookworm}"
KAFKA_ADDRESS = "kafka:9092"
CONFIG_IN_CONTAINER = "/etc/doa/kafka.properties"
METRICS_PORT = 9100  # each node container's Prometheus /metrics, on the compose network
UI_PORT = 8765
UI_PORTS = f"127.0.0.1:{UI_PORT}:{UI_PORT}"  # the page shows the data: on loopback only
IMAGE_FOLDERS = ("topologies", "schemas")  # what the Dockerfile copies into /app
NODE_ENV = {  # a production consumer session: Kafka's floor is 6 s, its default 45 s
    "DOA_SESSION_TIMEOUT_MS": "10000",
    "DOA_HEARTBEAT_INTERVAL_MS": "3000",
}
_SERVICE = re.compile(r"[a-z0-9][a-z0-9_.-]*")
_PLAIN = re.compile(r"[A-Za-z0-9_./:-]+")


@dataclass(frozen=True)
class Group:
    """Nodes that run together in one service (one ``doa run --nodes`` process per replica)."""

    name: str
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class Images:
    """Where the two images come from and what they are called.

    Parameters
    ----------
    app, kafka : the images' names
    dockerfile : the Dockerfile in the build context (None: its ``Dockerfile``, doa's own)
    context : the build context, relative to the compose file
    folders : the folders the image copies, one of which the topology must be under (empty:
        the caller checked the topology's path)
    """

    app: str = APP_IMAGE
    kafka: str = KAFKA_IMAGE
    dockerfile: str | None = None
    context: str = "."
    folders: tuple[str, ...] = IMAGE_FOLDERS


@dataclass(frozen=True)
class Options:
    """What else goes in the file.

    Parameters
    ----------
    broker : an existing cluster's bootstrap address (None: a ``kafka`` service)
    kafka_config : a client config file (``DOA_KAFKA_CONFIG``: TLS, SASL) mounted read-only
    demo_records : records of the ``source`` service (None: no source service)
    images : doa's own images (default), or a project's (:mod:`doa.deploy.project`)
    """

    broker: str | None = None
    kafka_config: str | None = None
    demo_records: int | None = None
    images: Images = Images()


def groups(topology: Topology, specs: Sequence[str]) -> list[Group]:
    """The node groups ``name=node,node`` of ``specs``; every other node is a group of its own.

    >>> from doa.topology.loader import load_topology
    >>> t = load_topology("topologies/fraud.py")
    >>> [(g.name, g.nodes) for g in groups(t, ["learn=scorer,watch_errors"])]
    [('featurize', ('featurize',)), ('learn', ('scorer', 'watch_errors'))]
    >>> groups(t, ["x=featurize", "y=featurize"])
    Traceback (most recent call last):
    doa.errors.DoaError: --group y: node 'featurize' is already in group x
    """
    placed: dict[str, str] = {}
    named: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, sep, listed = spec.partition("=")
        nodes = tuple(n.strip() for n in listed.split(",") if n.strip())
        if not sep or not nodes or not _SERVICE.fullmatch(name):
            raise DoaError(f"--group {spec!r}: expected NAME=NODE[,NODE...] with a lower-case "
                           "service name")
        for node in nodes:
            if node not in topology.nodes:
                raise DoaError(f"--group {name}: topology {topology.name!r} has no node "
                               f"{node!r} (nodes: {', '.join(topology.nodes)})")
            if node in placed:
                raise DoaError(f"--group {name}: node {node!r} is already in group "
                               f"{placed[node]}")
            placed[node] = name
        if name in named or (name in topology.nodes and name not in nodes):
            raise DoaError(f"--group {name}: the name is taken (by a group or a node)")
        named[name] = nodes
    out: list[Group] = []
    for node in topology.nodes:  # in the topology's order, each group where its first node is
        if node not in placed:
            out.append(Group(_service_name(node), (node,)))
        elif named.get(placed[node], ())[:1] == (node,):
            out.append(Group(placed[node], named[placed[node]]))
    return out


def _service_name(node: str) -> str:
    name = node.lower()
    if not _SERVICE.fullmatch(name):
        raise DoaError(f"node {node!r} is not a valid compose service name: put it in a "
                       "--group NAME=" + node)
    return name


def max_replicas(topology: Topology, group: Group) -> int:
    """How many replicas of ``group`` can have work: the most partitions a node reads."""
    return max(topology.streams[s].partitions for n in group.nodes
               for s in topology.nodes[n].reads)


def project_name(topology: Topology) -> str:
    """The compose project name: the topology's name, lower case, ``[a-z0-9_-]`` only.

    >>> from doa.topology.topology import Topology
    >>> project_name(Topology("Fraud Demo.v2"))
    'fraud-demo-v2'
    """
    return re.sub(r"[^a-z0-9_-]+", "-", topology.name.lower()).strip("-_") or "doa"


def image_path(path: str, folders: Sequence[str] = IMAGE_FOLDERS) -> str:
    """``path`` as the containers see it (relative to /app), or an error naming the folders
    the image has (no check with no ``folders``)."""
    if not folders:
        return path
    posix = PurePosixPath(path.replace("\\", "/"))
    if posix.is_absolute() or not posix.parts or posix.parts[0] not in folders:
        raise DoaError(f"topology {path!r}: give it relative to the project and under "
                       f"{' or '.join(f + '/' for f in folders)} (the folders the "
                       "Dockerfile copies into the image)")
    return str(posix)


def compose_file(topology: Topology, path: str, node_groups: Sequence[Group],
                 options: Options | None = None, command: str | None = None) -> str:
    """The docker-compose file for ``topology`` (loaded from ``path``), one service per group."""
    opts = options or Options()
    path = image_path(path, opts.images.folders)
    broker = opts.broker or KAFKA_ADDRESS
    taken = {g.name for g in node_groups} & {"kafka", "prepare", "source", "ui"}
    if taken:
        raise DoaError(f"group name {sorted(taken)[0]!r} is one of the file's own services")
    environment = {"DOA_BROKER": broker}
    volumes = []
    if opts.kafka_config:
        environment["DOA_KAFKA_CONFIG"] = CONFIG_IN_CONTAINER
        volumes = [f"{opts.kafka_config}:{CONFIG_IN_CONTAINER}:ro"]
    lines = _header(topology, path, node_groups, opts, command)
    if opts.broker is None:
        lines += _kafka(opts.images.kafka)
    ready = {"kafka": "service_healthy"} if opts.broker is None else {}
    app = opts.images.app
    lines += _service("prepare", app, ["deploy", path], environment, volumes, ready, build=True,
                      comment="topics and schemas, once; the others wait for it to succeed")
    done = {"prepare": "service_completed_successfully"}
    for group in node_groups:
        nodes = ",".join(group.nodes)
        lines += _service(group.name, app, ["run", path, "--nodes", nodes, "--quiet",
                                       "--metrics-port", str(METRICS_PORT)],
                          {**environment, **NODE_ENV}, volumes, done, restart=True,
                          comment=f"{nodes}: at most {max_replicas(topology, group)} "
                                  "replicas (partitions)")
    lines += _service("ui", app, ["ui", path, "--host", "0.0.0.0", "--port", str(UI_PORT)],
                      environment, volumes, done, restart=True, ports=[UI_PORTS],
                      profiles=["ui"], comment=f"doa ui on http://localhost:{UI_PORT} "
                                               "(docker compose --profile ui up)")
    if opts.demo_records is not None:
        lines += _service("source", app, ["deploy", path, "--publish-demo", str(opts.demo_records)],
                          environment, volumes, done,
                          comment="the demo's events, published once")
    return "\n".join(lines) + "\n"


def _header(topology: Topology, path: str, node_groups: Sequence[Group], opts: Options,
            command: str | None) -> list[str]:
    made_by = command or f"doa compose {path}"
    images = opts.images
    build = f"context: {_scalar(images.context)}, " + (
        f"dockerfile: {_scalar(images.dockerfile)}, " if images.dockerfile else "")
    return [
        f"# The doa topology {topology.name!r} ({path}) on docker compose.",
        f"# Generated by `{made_by}`:",
        "# change the topology or the command, not this file.",
        "#   DOA_BASE_IMAGE=... (optional)   a Debian bookworm image with python3 and python3-venv",
        "#   docker compose up --build        build the images, start everything"
        + (", publish the demo" if opts.demo_records is not None else ""),
        f"#   docker compose up --scale {node_groups[0].name}=N   more replicas of a node "
        "group (up to its partitions)" if node_groups else "#",
        f"name: {project_name(topology)}",
        "",
        f"x-build:  # the {images.dockerfile or 'Dockerfile'}'s two images",
        f"  app: &app {{{build}target: app, args: {{BASE_IMAGE: {_scalar(BASE)}}}}}",
        f"  kafka: &kafka {{{build}target: kafka, args: {{BASE_IMAGE: {_scalar(BASE)}}}}}",
        "",
        "services:",
    ]


def _kafka(image: str) -> list[str]:
    return [
        "  kafka:  # Apache Kafka, one KRaft node (for demos and tests: use your own cluster "
        "in production)",
        f"    image: {image}",
        "    build: *kafka",
        "    restart: unless-stopped",
        "    healthcheck:",
        '      test: ["CMD", "python", "-c", "from doa.local.embedded import api_versions; '
        "api_versions('127.0.0.1:9092')\"]",
        "      interval: 2s",
        "      timeout: 3s",
        "      retries: 60",
        "",
    ]


def _service(name: str, image: str, args: list[str], environment: dict[str, str],
             volumes: list[str], depends: dict[str, str], *, restart: bool = False,
             build: bool = False, ports: Sequence[str] = (), profiles: Sequence[str] = (),
             comment: str = "") -> list[str]:
    lines = [f"  {name}:" + (f"  # {comment}" if comment else ""),
             f"    image: {image}",
             *(["    build: *app"] if build else
               ["    pull_policy: never  # built once, by prepare"]),
             f"    command: [{', '.join(_scalar(a, always=True) for a in args)}]",
             "    environment:"]
    lines += [f"      {k}: {_scalar(v, always=True)}" for k, v in environment.items()]
    if volumes:
        lines += ["    volumes:"] + [f"      - {_scalar(v)}" for v in volumes]
    if ports:
        lines += ["    ports:"] + [f"      - {_scalar(p, always=True)}" for p in ports]
    if profiles:
        lines += [f"    profiles: [{', '.join(profiles)}]"]
    if depends:
        lines += ["    depends_on:"]
        for service, condition in depends.items():
            lines += [f"      {service}:", f"        condition: {condition}"]
    if restart:
        lines += ["    restart: unless-stopped", "    stop_grace_period: 30s"]
    return [*lines, ""]


def _scalar(value: str, always: bool = False) -> str:
    """A YAML scalar: plain when it is safe, else a JSON string (valid YAML)."""
    if not always and _PLAIN.fullmatch(value) and not value[0].isdigit():
        return value
    return json.dumps(value)
