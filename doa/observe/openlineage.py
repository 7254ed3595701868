"""OpenLineage run events from every node a ``doa run`` process runs.

Off unless the OpenLineage client is configured the way it reads its configuration itself:
``OPENLINEAGE_URL`` (HTTP, e.g. to Marquez), ``OPENLINEAGE_CONFIG`` or an ``openlineage.yml``
in the working directory or ``~/.openlineage``, or ``OPENLINEAGE__TRANSPORT__*`` variables
(any transport the client has: http, kafka, file, console); ``OPENLINEAGE_DISABLED=true``
turns it off. It needs ``doa[openlineage]`` (``openlineage-python``).

Each node is one job, ``<topology>.<node>`` in namespace ``$OPENLINEAGE_NAMESPACE`` (default
``doa``), with one run per process (a UUIDv7 made at start, the same in all its events): START
when the run starts, RUNNING every ``$DOA_OPENLINEAGE_INTERVAL_S`` seconds (60), then COMPLETE, or
FAIL with the error when the run ends with one. Inputs are the streams the node reads, outputs
those it writes and the topology's dead-letter stream, as OpenLineage names Kafka topics:
namespace ``kafka://<first bootstrap host:port>``, name the topic, with a schema facet from the
stream's Avro schema. The job facet says jobType (the node's kind), processingType STREAMING,
integration DOA.

Events are built and sent by a thread of their own: the client's transports block (HTTP,
Kafka), and a node never waits for them. A failure to build the client or to send an event is
one WARNING (later ones are DEBUG); a stop waits at most a few seconds for the last events.

Examples
--------
>>> configured({"OPENLINEAGE_URL": "http://marquez:5000"}, home="/nonexistent")
'OPENLINEAGE_URL'
>>> configured({}, cwd="/nonexistent", home="/nonexistent") is None
True
>>> avro_fields({"type": "record", "name": "R", "fields": [
...     {"name": "id", "type": "long", "doc": "the id"},
...     {"name": "tag", "type": ["null", "string"]},
...     {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]})
[('id', 'long', 'the id', []), ('tag', 'union<null,string>', None, []), ('at', 'long', None, [])]
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from doa.errors import DoaError
from doa.node import Node
from doa.topology.topology import Topology

log = logging.getLogger(__name__)

MISSING = ("OpenLineage is configured ({}) but openlineage-python is missing: "
           "python -m pip install 'doa[openlineage]' (or unset it)")
INTERVAL_ENV = "DOA_OPENLINEAGE_INTERVAL_S"
STOP_WAIT_S = 5.0

Field = tuple[str, str, "str | None", list[Any]]


def configured(environ: Mapping[str, str], cwd: str | None = None,
               home: str | None = None) -> str | None:
    """What configures the OpenLineage client (a variable or a file), None if nothing does."""
    if environ.get("OPENLINEAGE_DISABLED", "").strip().lower() == "true":
        return None
    for name in ("OPENLINEAGE_URL", "OPENLINEAGE_CONFIG"):
        if environ.get(name):
            return name
    transport = sorted(k for k, v in environ.items() if k.startswith("OPENLINEAGE__TRANSPORT")
                       and v)
    if transport:
        return "OPENLINEAGE__TRANSPORT__TYPE" if "OPENLINEAGE__TRANSPORT__TYPE" in transport \
            else transport[0]
    for folder in (cwd or os.getcwd(), os.path.join(home or os.path.expanduser("~"),
                                                     ".openlineage")):
        path = Path(folder) / "openlineage.yml"
        if path.is_file():
            return str(path)
    return None


def avro_type(t: Any) -> str:
    """A short name of an Avro type: ``long``, ``union<null,string>``, ``array<double>``."""
    if isinstance(t, list):
        return "union<" + ",".join(avro_type(x) for x in t) + ">"
    if isinstance(t, dict):
        kind = t.get("type")
        if kind == "array":
            return f"array<{avro_type(t.get('items'))}>"
        if kind == "map":
            return f"map<{avro_type(t.get('values'))}>"
        if kind in ("record", "enum", "fixed"):
            return str(t.get("name", kind))
        return avro_type(kind)
    return str(t)


def avro_fields(schema: Any) -> list[Field]:
    """``(name, type, doc, nested fields)`` of a record schema's fields (nested records too)."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return []
    out: list[Field] = []
    for f in schema.get("fields", []):
        t = f.get("type")
        inner = t if isinstance(t, dict) else None
        out.append((str(f["name"]), avro_type(t), f.get("doc"), avro_fields(inner)))
    return out


def namespace_of(address: str) -> str:
    """The dataset namespace of a Kafka cluster: ``kafka://`` and its first bootstrap server.

    >>> namespace_of("k1:9092, k2:9092")
    'kafka://k1:9092'
    """
    return "kafka://" + address.split(",")[0].strip()


class LineageEmitter:
    """Sends each node's run events from a thread; see the module docstring.

    Parameters
    ----------
    topology, address : the topology and the broker the nodes run on
    nodes : the nodes this process runs
    interval_s : seconds between RUNNING events (None: ``$DOA_OPENLINEAGE_INTERVAL_S`` or 60)
    client : a ready ``OpenLineageClient`` (None: one configured from the environment)
    """

    def __init__(self, topology: Topology, address: str, nodes: Sequence[Node],
                 interval_s: float | None = None, client: Any = None) -> None:
        try:
            from openlineage.client import event_v2  # noqa: F401
            from openlineage.client.uuid import generate_new_uuid
        except ModuleNotFoundError as e:
            raise DoaError(MISSING.format(configured(os.environ) or "")) from e
        from doa import __version__

        self.topology = topology
        self.address = address
        self.nodes = list(nodes)
        self.version = __version__
        self.producer = f"urn:doa:{__version__}"
        self.namespace = os.environ.get("OPENLINEAGE_NAMESPACE") or "doa"
        self.interval_s = interval_s if interval_s is not None else \
            float(os.environ.get(INTERVAL_ENV, "60"))
        self.run_ids = {n.name: str(generate_new_uuid()) for n in self.nodes}
        self._client = client
        self._queue: queue.Queue[tuple[str, BaseException | None] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="doa openlineage", daemon=True)
        self._warned = False
        self.sent = 0

    def start(self) -> None:
        """Queue the START events and start sending."""
        self._queue.put(("START", None))
        self._thread.start()

    def close(self, error: BaseException | None = None, wait_s: float = STOP_WAIT_S) -> None:
        """Queue COMPLETE (or FAIL with ``error``), then wait up to ``wait_s`` for the sends
        (1 s once a send has failed: a transport known to fail does not hold the stop)."""
        self._queue.put(("FAIL" if error is not None else "COMPLETE", error))
        self._queue.put(None)
        self._thread.join(timeout=min(wait_s, 1.0) if self._warned else wait_s)

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        client = self._client
        if client is None:
            try:
                from openlineage.client import OpenLineageClient

                client = OpenLineageClient()
            except Exception as exc:
                self._warn("cannot build the OpenLineage client", exc)
                return
        next_at = time.monotonic() + self.interval_s
        while True:
            try:
                item = self._queue.get(timeout=max(0.0, next_at - time.monotonic()))
            except queue.Empty:
                item = ("RUNNING", None)
                next_at = time.monotonic() + self.interval_s
            if item is None:
                break
            for node in self.nodes:
                self._send(client, node, *item)
        try:
            client.close(timeout=max(1.0, STOP_WAIT_S - 1.0))
        except Exception as exc:
            self._warn("closing the OpenLineage transport failed", exc)

    def _send(self, client: Any, node: Node, kind: str, error: BaseException | None) -> None:
        try:
            client.emit(self.event(node, kind, error))
            self.sent += 1
        except Exception as exc:
            self._warn(f"OpenLineage {kind} event of node {node.name!r} not sent", exc)

    def _warn(self, what: str, exc: BaseException) -> None:
        level = logging.DEBUG if self._warned else logging.WARNING
        self._warned = True
        reason = str(exc).splitlines()[0] if str(exc) else ""
        if len(reason) > 160:  # urllib3's retries repeat the pool's and the cause's reprs
            reason = reason[:157] + "..."
        log.log(level, "%s (%s: %s); the nodes go on", what, type(exc).__name__, reason)

    # -- events --------------------------------------------------------------------------------
    def event(self, node: Node, kind: str, error: BaseException | None = None) -> Any:
        """The ``RunEvent`` of type ``kind`` (START, RUNNING, COMPLETE, FAIL) for ``node``."""
        from openlineage.client import event_v2
        from openlineage.client.facet_v2 import (
            error_message_run,
            job_type_job,
            processing_engine_run,
        )

        run_facets: dict[str, Any] = {"processing_engine": processing_engine_run.
                                      ProcessingEngineRunFacet(version=self.version, name="doa",
                                                               producer=self.producer)}
        if error is not None:
            import traceback

            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}"[:4000], programmingLanguage="python",
                stackTrace="".join(traceback.format_exception(error))[-8000:],
                producer=self.producer)
        job = event_v2.Job(namespace=self.namespace, name=f"{self.topology.name}.{node.name}",
                           facets={"jobType": job_type_job.JobTypeJobFacet(
                               processingType="STREAMING", integration="DOA",
                               jobType=node.kind.upper(), producer=self.producer)})
        return event_v2.RunEvent(
            eventType=getattr(event_v2.RunState, kind),
            eventTime=datetime.now(timezone.utc).isoformat(),
            run=event_v2.Run(runId=self.run_ids[node.name], facets=run_facets),
            job=job, producer=self.producer,
            inputs=[event_v2.InputDataset(namespace_of(self.address), s,
                                          facets=self._dataset_facets(s))
                    for s in node.reads],
            outputs=[event_v2.OutputDataset(namespace_of(self.address), s,
                                            facets=self._dataset_facets(s))
                     for s in self.topology.outputs(node.name)])

    def _dataset_facets(self, stream: str) -> dict[str, Any]:
        from openlineage.client.facet_v2 import schema_dataset

        def convert(fields: list[Field]) -> list[Any]:
            return [schema_dataset.SchemaDatasetFacetFields(
                name=name, type=type_, description=doc, fields=convert(nested) or None)
                for name, type_, doc, nested in fields]

        schema = self.topology.codec(stream).schema.json
        return {"schema": schema_dataset.SchemaDatasetFacet(
            fields=convert(avro_fields(schema)), producer=self.producer)}
