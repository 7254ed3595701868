"""The parts of an Apache Kafka node that doa assembles: jars, storage format, configuration.

The first use of a Kafka version resolves its jars (``kafka_2.13`` and its runtime
dependencies, plus a log4j2 binding for its slf4j logging) with Maven from Maven Central into
``~/.cache/doa/kafka/VERSION/libs`` (``$DOA_KAFKA_CACHE`` or ``$XDG_CACHE_HOME`` move it), then
formats one storage directory with ``kafka.tools.StorageTool`` and keeps it as a template: its
bootstrap metadata (the release's feature levels) is the same for every cluster, so each new
node gets a copy plus its own ``meta.properties`` (cluster id, node id, directory id), which is
what the formatter writes. Later starts need neither Maven nor the network. Downloads are
retried, serialised between processes by a file lock, and fail with one line saying why.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from doa.local.embedded import BrokerError, free_port
from doa.local.kafka_auth import Auth

log = logging.getLogger(__name__)

DEFAULT_VERSION = "4.4.0"
MIN_JAVA = 17
ENV_VERSION = "DOA_KAFKA_VERSION"
ENV_CACHE = "DOA_KAFKA_CACHE"
LOG4J_BOM = "2.25.5"  # pins log4j-core/api and the slf4j 1.x binding to one release
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

POM = """<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by doa.local.apache_kafka: the runtime classpath of an Apache Kafka {version} node. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>doa.local</groupId>
  <artifactId>kafka-node</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencyManagement>
    <dependencies>
      <dependency>
        <groupId>org.apache.logging.log4j</groupId>
        <artifactId>log4j-bom</artifactId>
        <version>{log4j}</version>
        <type>pom</type>
        <scope>import</scope>
      </dependency>
    </dependencies>
  </dependencyManagement>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_2.13</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
    </dependency>
  </dependencies>
</project>
"""

LOG4J2 = """status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {path}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


class KafkaError(BrokerError):
    """Apache Kafka could not be assembled, started or reached."""


# -- tools ----------------------------------------------------------------------------------


def java_command() -> str:
    """The ``java`` to run Kafka with (``$JAVA_HOME/bin/java``, else the one on PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.access(Path(home) / "bin" / "java", os.X_OK):
        java = str(Path(home) / "bin" / "java")
    else:
        found = shutil.which("java")
        if found is None:
            raise KafkaError(f"a local Apache Kafka needs Java {MIN_JAVA} or newer and there is "
                             "no `java` on PATH (install a JDK, e.g. apt-get install "
                             "openjdk-17-jdk-headless, or set JAVA_HOME)")
        java = found
    major = java_major(java)
    if major < MIN_JAVA:
        raise KafkaError(f"a local Apache Kafka needs Java {MIN_JAVA} or newer; {java} is "
                         f"Java {major} (set JAVA_HOME to a newer one)")
    return java


def java_major(java: str) -> int:
    """The major version of ``java`` (8 for 1.8.0_x, 17 for 17.0.x)."""
    try:
        done = subprocess.run([java, "-version"], capture_output=True, timeout=30, check=False)
    except OSError as exc:
        raise KafkaError(f"could not run {java} -version: {exc}") from exc
    text = (done.stderr + done.stdout).decode(errors="replace")
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise KafkaError(f"could not tell the version of {java}: {text.strip()[:200]!r}")
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major


def maven_command() -> str:
    found = shutil.which("mvn")
    if found is None:
        raise KafkaError("the first use of a local Apache Kafka needs Maven (`mvn`) on PATH "
                         "to fetch its jars from Maven Central (install it, e.g. apt-get "
                         f"install maven; they are then kept in {cache_root()})")
    return found


def cache_root() -> Path:
    """Where assembled Kafka versions are kept: ``$DOA_KAFKA_CACHE`` or ~/.cache/doa/kafka."""
    configured = os.environ.get(ENV_CACHE)
    if configured:
        return Path(configured).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "doa" / "kafka"


def kafka_version(version: str | None = None) -> str:
    return version or os.environ.get(ENV_VERSION) or DEFAULT_VERSION


# -- assembling a version -------------------------------------------------------------------


@dataclass(frozen=True)
class Assembly:
    """An assembled Kafka version: its jars and a formatted storage template."""

    version: str
    root: Path

    @property
    def libs(self) -> Path:
        return self.root / "libs"

    @property
    def template(self) -> Path:
        """A formatted log directory without its meta.properties (cluster-independent)."""
        return self.root / "template"

    @property
    def classpath(self) -> str:
        return str(self.libs / "*")


def assemble(version: str | None = None, attempts: int = 3) -> Assembly:
    """The jars of Kafka ``version`` in the cache, downloaded with Maven on first use.

    Safe to call from several processes at once (a file lock serialises the download).
    Raises :class:`KafkaError` with one line saying what failed.
    """
    version = kafka_version(version)
    if not re.fullmatch(r"[0-9A-Za-z.\-]+", version):
        raise KafkaError(f"not a Kafka version: {version!r}")
    root = cache_root() / version
    done = Assembly(version, root)
    if (root / "complete").exists():
        return done
    java = java_command()
    if not (done.libs / f"kafka_2.13-{version}.jar").exists():
        maven_command()  # say what is missing before creating anything
    root.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f".{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (root / "complete").exists():  # another process assembled it while we waited
            return done
        if not (done.libs / f"kafka_2.13-{version}.jar").exists():
            with _status(f"resolving Apache Kafka {version} jars with Maven into {root} "
                         "(first use only)..."):
                _download(root, version, attempts)
        with _status(f"formatting the Apache Kafka {version} storage template..."):
            _format_template(java, done)
        (root / "complete").write_text(f"{version}\n")
    log.info("assembled Apache Kafka %s in %s", version, root)
    return done


@contextlib.contextmanager
def _status(text: str) -> Iterator[None]:
    """A spinner with ``text`` on a terminal (rich), else one line on stderr."""
    if sys.stderr.isatty():
        from rich.console import Console

        with Console(stderr=True).status(text):
            yield
    else:
        print(text, file=sys.stderr, flush=True)
        yield


def _download(root: Path, version: str, attempts: int) -> None:
    mvn = maven_command()
    (root / "pom.xml").write_text(POM.format(version=version, log4j=LOG4J_BOM))
    partial = root / "libs.partial"
    output = root / "mvn.log"
    cmd = [mvn, "-B", "-q", "-f", str(root / "pom.xml"),
           f"{DEPENDENCY_PLUGIN}:copy-dependencies", f"-DoutputDirectory={partial}",
           "-DincludeScope=runtime", "-Dmaven.wagon.http.retryHandler.count=3", "-U"]
    last = ""
    for attempt in range(1, attempts + 1):
        shutil.rmtree(partial, ignore_errors=True)
        with open(output, "wb") as out:
            try:
                code = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=900,
                                      check=False).returncode
            except subprocess.TimeoutExpired:
                code = -1
        if code == 0 and (partial / f"kafka_2.13-{version}.jar").exists():
            shutil.rmtree(root / "libs", ignore_errors=True)
            partial.rename(root / "libs")
            return
        text = output.read_text(errors="replace")
        if re.search(r"Could not find artifact org\.apache\.kafka:kafka_2\.13|"
                     r"kafka_2\.13:jar:\S+ was not found", text):
            raise KafkaError(f"Maven Central has no Apache Kafka {version} "
                             f"(org.apache.kafka:kafka_2.13:{version}); see {output}")
        last = _last_error(text) or f"mvn exited with {code}"
        log.warning("downloading Kafka %s with mvn failed (attempt %s of %s): %s",
                    version, attempt, attempts, last)
        if attempt < attempts:
            time.sleep(5 * attempt)
    raise KafkaError(f"could not download Apache Kafka {version} from Maven Central with mvn "
                     f"({attempts} attempts): {last} (full output: {output})")


def _last_error(text: str) -> str:
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in text.splitlines()]
    errors = [line for line in lines if line.startswith("[ERROR]") and len(line) > 8]
    pick = errors[0] if errors else (lines[-1] if lines else "")
    return pick[:300]


def _format_template(java: str, assembly: Assembly) -> None:
    """Format one node's storage with StorageTool and keep what it wrote besides
    meta.properties (the release's bootstrap metadata: feature levels, the same for every
    cluster of this version) as the template of every later node's log directory."""
    if (assembly.template / "formatted").exists():
        return
    with tempfile.TemporaryDirectory(prefix="doa-kafka-format-") as tmp:
        data = Path(tmp) / "data"
        props = Path(tmp) / "server.properties"
        node = _NodeSpec(1, free_port(), free_port(), data)
        props.write_text(_properties(node, [node], {}, Path(tmp)))
        done = subprocess.run(
            [java, "-Xmx256m", "-cp", assembly.classpath,
             f"-Dlog4j2.configurationFile={_log_config(Path(tmp), 'ERROR')}",
             "kafka.tools.StorageTool", "format", "-t", new_uuid(), "-c", str(props)],
            capture_output=True, timeout=300, check=False)
        if done.returncode != 0 or not (data / "meta.properties").exists():
            text = (done.stderr + done.stdout).decode(errors="replace").strip()
            raise KafkaError(f"formatting Kafka {assembly.version} storage failed "
                             f"(exit {done.returncode}): {text.splitlines()[-1] if text else ''}")
        (data / "meta.properties").unlink()
        shutil.rmtree(assembly.template, ignore_errors=True)
        shutil.copytree(data, assembly.template)
        (assembly.template / "formatted").write_text(assembly.version + "\n")


def new_uuid() -> str:
    """A random Kafka Uuid as Kafka prints it (URL-safe base64, no padding, not '-' first)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _log_config(directory: Path, level: str) -> Path:
    path = directory / "log4j2.properties"
    path.write_text(LOG4J2.format(path=directory / "server.log", level=level))
    return path


# -- nodes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _NodeSpec:
    node_id: int
    port: int  # the clients' listener (SASL and/or TLS when the cluster is secured)
    controller_port: int
    data: Path
    internal_port: int | None = None  # PLAINTEXT between brokers, when clients use SASL

    @property
    def plain_address(self) -> str:
        """A PLAINTEXT listener of this node (doa's own readiness checks use it)."""
        return f"127.0.0.1:{self.internal_port or self.port}"


def _properties(node: _NodeSpec, nodes: list[_NodeSpec], overrides: Mapping[str, object],
                home: Path, auth: Auth | None = None) -> str:
    n = len(nodes)
    replicas = min(3, n)
    voters = ",".join(f"{x.node_id}@127.0.0.1:{x.controller_port}" for x in nodes)
    config: dict[str, object] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters,
        "listeners": f"PLAINTEXT://127.0.0.1:{node.port},"
                     f"CONTROLLER://127.0.0.1:{node.controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        **(auth.listeners(node.port, node.internal_port, node.controller_port)
           if auth is not None and auth.secured and node.internal_port else {}),
        "log.dirs": node.data,
        "num.partitions": 1,
        "default.replication.factor": replicas,
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": 0,
        # doa's consumers use a ~3 s session (fast joins, as on the embedded broker); Kafka's
        # default floor of 6 s would refuse them with InvalidSessionTimeoutError.
        "group.min.session.timeout.ms": 1000,
        "offsets.topic.replication.factor": replicas,
        "offsets.topic.num.partitions": 4,
        "transaction.state.log.replication.factor": replicas,
        "transaction.state.log.min.isr": min(2, replicas),
        "transaction.state.log.num.partitions": 4,
        "share.coordinator.state.topic.replication.factor": replicas,
        "share.coordinator.state.topic.min.isr": min(2, replicas),
        "share.coordinator.state.topic.num.partitions": 4,
        "broker.heartbeat.interval.ms": 500,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "log.cleaner.threads": 1,
        "log.cleaner.dedupe.buffer.size": 8 * 1024 * 1024,
    }
    config.update(overrides)
    lines = [f"# Written by doa.local.apache_kafka for node {node.node_id} of {n} ({home})"]
    lines += [f"{k}={v}" for k, v in config.items()]
    return "\n".join(lines) + "\n"


def _meta_properties(cluster_id: str, node_id: int) -> str:
    """What StorageTool writes into a formatted log directory (meta.properties v1)."""
    return (f"#\n#Written by doa.local.apache_kafka\nnode.id={node_id}\ndirectory.id={new_uuid()}\n"
            f"version=1\ncluster.id={cluster_id}\n")


def free_ports(n: int, exclude: set[int]) -> list[int]:
    """``n`` distinct free loopback ports not in ``exclude`` (held open together so none
    repeats)."""
    sockets: list[socket.socket] = []
    try:
        while len(sockets) < n:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            if s.getsockname()[1] in exclude:
                s.close()
                continue
            sockets.append(s)
        return [int(s.getsockname()[1]) for s in sockets]
    finally:
        for s in sockets:
            s.close()
