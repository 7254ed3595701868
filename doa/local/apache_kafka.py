"""A real Apache Kafka on this machine, for tests and local realism (not for production).

:class:`LocalKafka` starts one KRaft node, or a cluster of N nodes that are each broker and
controller, on free loopback ports, from the jars of Apache Kafka's Maven Central artifacts:
the first use of a version resolves them with Maven into ``~/.cache/doa/kafka/VERSION/libs``
(``$DOA_KAFKA_CACHE`` or ``$XDG_CACHE_HOME`` move it) and formats a storage template once with
``kafka.tools.StorageTool``; every later start reuses both. Each node runs in its own JVM with
a bounded heap, keeps its log in a temporary directory, and dies with its parent as the
embedded broker does (SIGKILL on :meth:`LocalKafka.stop`, ``PR_SET_PDEATHSIG`` when the parent
dies, even by ``kill -9``); the data goes with it: a small watchdog process, which outlives its
parent, removes the temporary directory once the parent and its JVMs are gone.

The configuration is Kafka's defaults except for what a throw-away cluster on a laptop needs:
internal topics replicated ``min(3, N)`` times with few partitions, no initial rebalance delay,
and ``auto.create.topics.enable=false`` (doa creates every topic it uses with its declared
partitions; a client relying on auto-creation fails here as it would on most production
clusters). The record size limit (``message.max.bytes``, 1 MB) and compaction are Kafka's.

Examples
--------
>>> with LocalKafka(brokers=1) as kafka:          # doctest: +SKIP
...     print(kafka.address)
127.0.0.1:40123
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType

from doa.local.embedded import BrokerError, _die_with_parent, api_versions, metadata
from doa.local.kafka_auth import Auth
from doa.local.kafka_classes import ClassArchive
from doa.local.kafka_homes import (
    kept_cluster_id,
    kill_process,
    sweep_stale_homes,
    terminate_process,
    watch_home,
)
from doa.local.kafka_node import (
    Assembly,
    KafkaError,
    _log_config,
    _meta_properties,
    _NodeSpec,
    _properties,
    assemble,
    cache_root,
    free_ports,
    java_command,
    kafka_version,
    new_uuid,
)

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
ENV_HEAP = "DOA_KAFKA_HEAP_MB"
ENV_LOG = "DOA_KAFKA_LOG"
__all__ = ["KafkaError", "LocalKafka", "assemble", "cache_root", "kafka_version", "local_kafka"]


class LocalKafka:
    """Apache Kafka (KRaft) on free loopback ports: one node or an N-node cluster.

    Parameters
    ----------
    brokers : how many nodes (each both broker and controller)
    port : the first node's client port (default: a free one, as every other port)
    version : the Kafka release (default ``$DOA_KAFKA_VERSION`` or :data:`DEFAULT_VERSION`)
    heap_mb : the heap of each node's JVM (default ``$DOA_KAFKA_HEAP_MB`` or 512)
    timeout : seconds to wait until every node serves and all brokers are registered
    config : server.properties entries that replace doa's (e.g. ``{"log.segment.bytes": ...}``)
    log_level : log4j level of the nodes' ``server.log`` (default ``$DOA_KAFKA_LOG`` or WARN)
    users : SASL users and passwords: clients then authenticate (SCRAM-SHA-256, SCRAM-SHA-512
        or PLAIN) on :attr:`address`; brokers talk PLAINTEXT on internal ports
    keystore : a PEM file with the private key and certificate chain of the client listener,
        which then speaks TLS (SSL, or SASL_SSL with ``users``)
    listen : the interface of the client listener (``0.0.0.0`` in a container)
    advertise : the ``HOST`` or ``HOST:PORT`` clients are told to connect to (default: the
        listener on loopback); ``HOST:PORT`` needs one node, as ``kafka:9092`` in a compose
        network
    data : a directory that keeps the nodes' logs (topics, offsets, the cluster's metadata)
        across stops and starts, as ``node-N/`` in it: made at the first start, used again at
        the next (a PLAINTEXT cluster of as many nodes; the compose network's Kafka keeps its
        streams when its container restarts); None: in the temporary home, deleted at stop
    """

    def __init__(self, brokers: int = 1, *, port: int | None = None,
                 version: str | None = None, heap_mb: int | None = None,
                 timeout: float = 120.0, config: Mapping[str, object] | None = None,
                 log_level: str | None = None, users: Mapping[str, str] | None = None,
                 keystore: str | Path | None = None, listen: str = LOOPBACK,
                 advertise: str | None = None, data: str | Path | None = None) -> None:
        if brokers < 1:
            raise KafkaError(f"a Kafka cluster needs at least one broker, not {brokers}")
        if advertise is not None and ":" in advertise and brokers != 1:
            raise KafkaError(f"advertise {advertise!r}: give a HOST for {brokers} nodes")
        self.brokers = brokers
        self.port = port
        self.version = kafka_version(version)
        self.heap_mb = heap_mb or int(os.environ.get(ENV_HEAP) or 512)
        self.timeout = timeout
        self.config = dict(config or {})
        self.log_level = (log_level or os.environ.get(ENV_LOG) or "WARN").upper()
        self.auth = Auth(users=dict(users) if users is not None else None,
                         keystore=Path(keystore) if keystore is not None else None)
        if self.auth.secured and (listen != LOOPBACK or advertise):
            raise KafkaError("listen/advertise apply to a PLAINTEXT cluster (no users, keystore)")
        self.listen, self.advertise = listen, advertise
        if data is not None and self.auth.secured:
            raise KafkaError("data applies to a PLAINTEXT cluster (no users, keystore)")
        self.data = None if data is None else Path(data)
        self.cluster_id = kept_cluster_id(self.data, brokers) or new_uuid()
        self.nodes: list[_NodeSpec] = []
        self.processes: dict[int, subprocess.Popen[bytes]] = {}
        self.home: Path | None = None
        self.started_in: float | None = None
        self._watchdog: tuple[int, subprocess.Popen[bytes]] | None = None  # its pipe's end
        self._classes: ClassArchive | None = None  # the JVM's class-data archive
        self._dumper: int | None = None  # the node that writes it when it ends

    @property
    def address(self) -> str:
        """The bootstrap address: every node's listener, comma-separated."""
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    def node_address(self, node_id: int) -> str:
        return f"127.0.0.1:{self._node(node_id).port}"

    def _node(self, node_id: int) -> _NodeSpec:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KafkaError(f"no node {node_id} (nodes: {[n.node_id for n in self.nodes]})")

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> LocalKafka:
        began = time.monotonic()
        assembly = assemble(self.version)
        java = java_command()
        self._classes = ClassArchive(java, assembly)
        held = sweep_stale_homes()
        self.home = Path(tempfile.mkdtemp(prefix="doa-kafka-"))
        (self.home / "owner").write_text(f"{os.getpid()}\n")
        self._watchdog = watch_home(self.home)
        per = 3 if self.auth.secured else 2
        ports = free_ports(per * self.brokers, exclude=held | ({self.port} if self.port else set()))
        if self.port:
            ports[0] = self.port
        (self.home / "ports").write_text(" ".join(map(str, ports)))  # held while we live
        self.nodes = [_NodeSpec(i + 1, ports[per * i], ports[per * i + 1],
                                self.home / f"node-{i + 1}" / "data" if self.data is None
                                else self.data / f"node-{i + 1}",
                                ports[per * i + 2] if self.auth.secured else None)
                      for i in range(self.brokers)]
        try:
            for node in self.nodes:
                self._prepare(node, assembly)
            for node in self.nodes:
                self._launch(node, java, assembly)
            self._wait_until_serving(began + self.timeout)
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        log.info("Apache Kafka %s: %s node(s) on %s in %.1f s (%s)", self.version,
                 self.brokers, self.address, self.started_in, self.home)
        return self

    def _node_dir(self, node: _NodeSpec) -> Path:
        assert self.home is not None
        return self.home / f"node-{node.node_id}"

    def _prepare(self, node: _NodeSpec, assembly: Assembly) -> None:
        directory = self._node_dir(node)
        assert self.home is not None
        directory.mkdir(parents=True, exist_ok=True)
        properties = directory / "server.properties"
        properties.write_text(_properties(node, self.nodes,
                                          {**self._listeners(node), **self.config},
                                          self.home, self.auth))
        if self.auth.users:  # SCRAM credentials live in the bootstrap metadata: format afresh
            _format_storage(java_command(), assembly, properties, self.cluster_id, self.auth)
        elif (node.data / "meta.properties").exists():  # kept from an earlier start (data=)
            pass
        else:
            shutil.copytree(assembly.template, node.data,  # data=: a start cut short left it
                            ignore=shutil.ignore_patterns("formatted"), dirs_exist_ok=True)
            (node.data / "meta.properties").write_text(
                _meta_properties(self.cluster_id, node.node_id))
        _log_config(directory, self.log_level)

    def _listeners(self, node: _NodeSpec) -> dict[str, object]:
        """The client listener on :attr:`listen`, advertised as :attr:`advertise`:

        >>> k = LocalKafka(listen="0.0.0.0", advertise="kafka:9092")
        >>> k._listeners(_NodeSpec(1, 9092, 9093, Path("/tmp")))["advertised.listeners"]
        'PLAINTEXT://kafka:9092'
        """
        if self.listen == LOOPBACK and self.advertise is None:
            return {}
        advertised = self.advertise or LOOPBACK
        advertised += "" if ":" in advertised else f":{node.port}"
        return {"listeners": f"PLAINTEXT://{self.listen}:{node.port},"
                             f"CONTROLLER://{LOOPBACK}:{node.controller_port}",
                "advertised.listeners": f"PLAINTEXT://{advertised}"}

    def _launch(self, node: _NodeSpec, java: str, assembly: Assembly) -> None:
        directory = self._node_dir(node)
        classes = self._classes.options() if self._classes is not None else []
        if self._classes is not None and self._classes.dumping and self._dumper is None:
            self._dumper = node.node_id
        cmd = [java, *classes, f"-Xms{min(self.heap_mb, 128)}m", f"-Xmx{self.heap_mb}m",
               "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss512k",
               "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
               f"-Dlog4j2.configurationFile={directory / 'log4j2.properties'}",
               f"-Dkafka.logs.dir={directory}", f"-Ddoa.kafka.home={self.home}",
               "-cp", assembly.classpath, "kafka.Kafka", str(directory / "server.properties")]
        with open(directory / "stdout.log", "wb") as out:
            self.processes[node.node_id] = subprocess.Popen(
                cmd, cwd=directory, stdin=subprocess.DEVNULL, stdout=out,
                stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)

    def _wait_until_serving(self, deadline: float) -> None:
        last: Exception | None = None
        while time.monotonic() < deadline:
            for node in self.nodes:
                proc = self.processes[node.node_id]
                if proc.poll() is not None:
                    raise KafkaError(f"Kafka node {node.node_id} exited with code "
                                     f"{proc.returncode} before serving: "
                                     f"{self._why(node)}")
            try:
                for node in self.nodes:
                    api_versions(node.plain_address)
                brokers, controller = metadata(self.nodes[0].plain_address)
                if len(brokers) == self.brokers and controller >= 0:
                    return
                last = KafkaError(f"{len(brokers)} of {self.brokers} brokers registered")
            except (OSError, struct.error, BrokerError) as exc:
                last = exc
            time.sleep(0.05)
        raise KafkaError(f"Apache Kafka ({self.brokers} node(s), {self.home}) did not serve "
                         f"within {self.timeout:.0f} s ({last})")

    def _why(self, node: _NodeSpec) -> str:
        directory = self._node_dir(node)
        for name in ("server.log", "stdout.log"):
            path = directory / name
            with contextlib.suppress(OSError):
                lines = [line.strip() for line in path.read_text(errors="replace").splitlines()
                         if line.strip()]
                errors = [line for line in lines
                          if " ERROR " in line or "Exception" in line or "Error:" in line]
                if errors or lines:
                    return (errors or lines)[-1][:400] + f" (see {path})"
        return f"no output (see {directory})"

    def kill(self, node_id: int) -> None:
        """SIGKILL one node (for failure tests); the others keep running."""
        proc = self.processes.pop(node_id, None)
        if proc is not None:
            kill_process(proc)
        if node_id == self._dumper:
            self._dumped(exited=False)

    def restart(self, node_id: int) -> None:
        """Start a killed node again on its ports and data."""
        node = self._node(node_id)
        if node_id in self.processes:
            raise KafkaError(f"node {node_id} is running")
        self._launch(node, java_command(), assemble(self.version))

    def stop(self) -> None:
        """Kill every node (SIGKILL: the data is thrown away) and remove the data."""
        processes, self.processes = self.processes, {}
        if self._dumper is not None:  # it writes the class-data archive at a clean exit
            proc = processes.pop(self._dumper, None)
            self._dumped(exited=proc is not None and terminate_process(proc))
        for proc in processes.values():
            kill_process(proc)
        home, self.home = self.home, None
        if home is not None and not os.environ.get("DOA_KAFKA_KEEP"):
            shutil.rmtree(home, ignore_errors=True)
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is not None:
            os.close(watchdog[0])  # the watchdog ends (the directory is already gone)
            with contextlib.suppress(subprocess.TimeoutExpired):
                watchdog[1].wait(timeout=10)

    def _dumped(self, exited: bool) -> None:
        self._dumper = None
        if self._classes is not None:
            self._classes.finish(exited)

    def __enter__(self) -> LocalKafka:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def alive(self) -> bool:
        """True while every node started (and not killed on purpose) runs."""
        return bool(self.processes) and all(p.poll() is None for p in self.processes.values())

    def exited(self) -> str | None:
        """What happened to the first node that exited by itself, if one did."""
        for node_id, proc in self.processes.items():
            if proc.poll() is not None:
                return (f"Kafka node {node_id} exited with code {proc.returncode}: "
                        f"{self._why(self._node(node_id))}")
        return None


def _format_storage(java: str, assembly: Assembly, properties: Path, cluster_id: str,
                    auth: Auth) -> None:
    """Format one node's log directory with StorageTool, storing the SCRAM credentials of
    ``auth``'s users (SHA-256 and SHA-512) in its bootstrap metadata."""
    scram = auth.scram_arguments()
    done = subprocess.run(
        [java, "-Xmx256m", "-XX:TieredStopAtLevel=1", "-cp", assembly.classpath,
         f"-Dlog4j2.configurationFile={_log_config(properties.parent, 'ERROR')}",
         "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(properties),
         *scram], capture_output=True, timeout=300, check=False)
    if done.returncode != 0:
        text = (done.stderr + done.stdout).decode(errors="replace").strip()
        raise KafkaError(f"formatting Kafka storage with SCRAM users failed (exit "
                         f"{done.returncode}): {text.splitlines()[-1] if text else ''}")


@contextlib.contextmanager
def local_kafka(brokers: int = 1, **kwargs: object) -> Iterator[LocalKafka]:
    """``with local_kafka(3) as k:`` — a started :class:`LocalKafka`, stopped afterwards."""
    kafka = LocalKafka(brokers, **kwargs)  # type: ignore[arg-type]
    with kafka:
        yield kafka
