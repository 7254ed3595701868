"""``/metrics`` for Prometheus: what a ``doa run`` process's nodes have done, read when scraped.

Turned on by ``doa run --metrics-port PORT`` or ``DOA_METRICS_PORT`` (needs ``doa[metrics]``,
i.e. ``prometheus-client``). Nothing is counted for Prometheus on the hot path: a custom
collector, registered in a registry of its own (not the library's global one), reads at scrape
time the counters the engines keep anyway (:class:`doa.engines.NodeStats`, each partition's
state and input positions) and those the node's :class:`doa.observe.meter.Meter` adds per batch.

Exported (every series has the labels ``topology`` and ``node``):

- ``doa_records_in_total``, ``doa_records_out_total``, ``doa_records_dead_lettered_total``,
  ``doa_records_skipped_total`` (label ``stream``: the input stream a record was read from, or
  the output stream it went to; skipped: replays ``doa dlq --replay`` addressed to another node)
- ``doa_step_seconds`` (histogram: one input partition's batch through decode, step, encode)
  and ``doa_batch_records`` (histogram: records in that batch)
- ``doa_consumer_lag_records`` (``stream``, ``partition``: log end minus the next offset the
  node will process, for the input partitions this process holds)
- ``doa_snapshots_total``, ``doa_snapshot_bytes_total``, ``doa_partitions_assigned``
- ``doa_learner_metric`` (``partition``, ``metric``: the River metric's value) and
  ``doa_model_version`` (``partition``), for learner nodes (and the version for model nodes)
- ``doa_model_metric`` (``partition``, ``metric``, ``version``, ``role``: ``live`` or
  ``candidate``), for model nodes with ``labels=``: each running version's metric on the labels
- ``doa_drift_events_total`` (``stream``), for detector nodes

Examples
--------
>>> metrics_port({"DOA_METRICS_PORT": "9464"}), metrics_port({})
(9464, None)
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from doa.errors import DoaError
from doa.observe.meter import Buckets, Meter

log = logging.getLogger(__name__)

ENV = "DOA_METRICS_PORT"
MISSING = ("--metrics-port / DOA_METRICS_PORT needs prometheus-client: "
           "python -m pip install 'doa[metrics]'")


def metrics_port(environ: Mapping[str, str]) -> int | None:
    """The port ``DOA_METRICS_PORT`` asks for (None: metrics are off)."""
    raw = environ.get(ENV, "").strip()
    if not raw:
        return None
    try:
        port = int(raw)
    except ValueError:
        raise DoaError(f"{ENV}={raw!r}: not a port number") from None
    if not 0 <= port < 65536:
        raise DoaError(f"{ENV}={raw!r}: not a port number (0-65535)")
    return port


def partitioned(worker: Any) -> Any:
    """The engine's per-partition part of a worker: the worker itself (kafka engine) or the
    node it mounts in its Faust app (faust engine); None before it exists."""
    return worker if hasattr(worker, "states") else getattr(worker, "mounted", None)


def consumer_of(part: Any) -> Any:
    """The group consumer fetching the node's inputs (it knows each partition's high
    watermark): the kafka engine's own, or the Faust app's; None if not started."""
    consumer = getattr(part, "_consumer", None)
    if consumer is None:
        consumer = getattr(getattr(part, "app", None), "consumer", None)
    return consumer


class DoaCollector:
    """A ``prometheus_client`` collector over the workers of one ``doa run`` process.

    Parameters
    ----------
    topology : the topology's name (label ``topology``)
    workers : the engine's workers (:class:`doa.engines.Worker`), one per node
    """

    def __init__(self, topology: str, workers: Sequence[Any]) -> None:
        self.topology = topology
        self.workers = list(workers)

    def describe(self) -> list[Any]:
        return []  # no check of names at registration: collect() is the only source

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        def counter(name: str, doc: str, *extra: str) -> Any:
            return CounterMetricFamily(name, doc, labels=["topology", "node", *extra])

        def gauge(name: str, doc: str, *extra: str) -> Any:
            return GaugeMetricFamily(name, doc, labels=["topology", "node", *extra])

        def histogram(name: str, doc: str) -> Any:
            return HistogramMetricFamily(name, doc, labels=["topology", "node"])

        f = {
            "in": counter("doa_records_in", "Records read, per input stream", "stream"),
            "out": counter("doa_records_out", "Records written, per output stream", "stream"),
            "dead": counter("doa_records_dead_lettered",
                            "Records sent to the dead-letter stream, per input stream", "stream"),
            "skipped": counter("doa_records_skipped",
                               "Records read and not processed (replays for another node), per "
                               "input stream", "stream"),
            "step": histogram("doa_step_seconds",
                              "Seconds one input partition's batch took (decode, step, encode)"),
            "batch": histogram("doa_batch_records", "Records in one input partition's batch"),
            "lag": gauge("doa_consumer_lag_records",
                         "Log end offset minus the next offset the node processes",
                         "stream", "partition"),
            "snaps": counter("doa_snapshots", "State snapshots written"),
            "snap_bytes": counter("doa_snapshot_bytes",
                                  "Bytes of state snapshots written (record values)"),
            "parts": gauge("doa_partitions_assigned", "Input partitions this process holds"),
            "metric": gauge("doa_learner_metric", "A learner's running River metric",
                            "partition", "metric"),
            "version": gauge("doa_model_version", "The model version a learner uses",
                             "partition"),
            "model_metric": gauge("doa_model_metric", "A model node's running River metric on "
                                  "its labels, per version (live, and candidate if one runs)",
                                  "partition", "metric", "version", "role"),
            "drift": counter("doa_drift_events", "Drift events a detector published", "stream"),
        }
        for worker in self.workers:
            try:
                self._node(worker, f)
            except Exception as exc:  # a scrape never fails the node, nor the whole scrape
                log.debug("metrics of node %s: %s", getattr(worker.node, "name", "?"), exc)
        yield from f.values()

    def _node(self, worker: Any, f: dict[str, Any]) -> None:
        node, stats = worker.node, worker.stats
        labels = [self.topology, node.name]
        part = partitioned(worker)
        meter: Meter | None = getattr(getattr(part, "runner", None), "meter", None)
        f["snaps"].add_metric(labels, stats.snapshots)
        f["parts"].add_metric(labels, stats.partitions)
        if meter is None:  # not mounted yet (faust): the engine's totals only
            return
        for key, counts in (("in", meter.records_in), ("out", meter.records_out),
                            ("dead", meter.dead_letters), ("skipped", meter.skipped)):
            for stream, n in dict(counts).items():
                f[key].add_metric([*labels, stream], n)
        if node.kind == "detector":  # every drift stream from the start, at 0 until a drift
            out = dict(meter.records_out)
            for stream in node.writes:
                f["drift"].add_metric([*labels, stream], out.get(stream, 0))
        _histogram(f["step"], labels, meter.seconds)
        _histogram(f["batch"], labels, meter.sizes)
        f["snap_bytes"].add_metric(labels, meter.snapshot_bytes)
        states = dict(part.states)
        for p, lag in _lags(part, node.reads):
            f["lag"].add_metric([*labels, p[0], str(p[1])], lag)
        for p, state in sorted(states.items()):
            _learner(f, labels, p, state)
            if node.kind == "model":
                _model(f, labels, p, state)


def _histogram(family: Any, labels: list[str], buckets: Buckets) -> None:
    cumulative = buckets.cumulative()
    family.add_metric(labels, cumulative, buckets.total)


def _lags(part: Any, reads: Iterable[str]) -> list[tuple[tuple[str, int], int]]:
    """``((stream, partition), lag)`` for every input partition the node holds whose log end
    the consumer knows."""
    consumer = consumer_of(part)
    if consumer is None:
        return []
    from aiokafka import TopicPartition

    out = []
    positions = {p: dict(pos) for p, pos in dict(part.positions).items()}
    for p in sorted(positions):
        for stream in reads:
            try:
                high = consumer.highwater(TopicPartition(stream, p))
            except Exception:  # not assigned (any more)
                continue
            if high is not None:
                out.append(((stream, p), max(0, int(high) - positions[p].get(stream, 0))))
    return out


def _model(f: dict[str, Any], labels: list[str], p: int, state: Any) -> None:
    """A model node's live and candidate metrics, from its partition's state (River metrics
    by version in ``metrics``: :mod:`doa.model.labels`).

    >>> from types import SimpleNamespace
    >>> from river.metrics import MAE
    >>> live = MAE()
    >>> live.update(3.0, 1.0)
    >>> got = SimpleNamespace(add_metric=lambda labels, value: print(labels, value))
    >>> _model({"model_metric": got}, ["t", "price"], 0,
    ...        {"version": 2, "candidate": 3, "metrics": {2: live, 3: MAE()}})
    ['t', 'price', '0', 'MAE', '2', 'live'] 2.0
    ['t', 'price', '0', 'MAE', '3', 'candidate'] 0.0
    """
    if not isinstance(state, dict) or not isinstance(state.get("metrics"), dict):
        return
    for role in ("version", "candidate"):
        version = state.get(role)
        metric = state["metrics"].get(version)
        if version is None or not callable(getattr(metric, "get", None)):
            continue
        try:
            value = float(metric.get())
        except Exception:  # updated by the node meanwhile, or not a number
            continue
        f["model_metric"].add_metric([*labels, str(p), type(metric).__name__, str(version),
                                      "live" if role == "version" else "candidate"], value)


def _learner(f: dict[str, Any], labels: list[str], p: int, state: Any) -> None:
    """A learner's metric and model version, from its partition's state (a dict holding the
    River ``metric`` and the ``version``: :mod:`doa.learner.node`)."""
    if not isinstance(state, dict):
        return
    metric, version = state.get("metric"), state.get("version")
    if isinstance(version, int):
        f["version"].add_metric([*labels, str(p)], version)
    if metric is not None and callable(getattr(metric, "get", None)):
        try:
            value = float(metric.get())
        except Exception:  # updated by the node meanwhile, or not a number
            return
        f["metric"].add_metric([*labels, str(p), type(metric).__name__], value)


class MetricsServer:
    """``/metrics`` served from a thread by prometheus-client's own HTTP server.

    ``port`` 0 picks a free port; :attr:`port` is the one bound.
    """

    def __init__(self, collector: DoaCollector, port: int, addr: str = "0.0.0.0") -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ModuleNotFoundError as e:
            raise DoaError(MISSING) from e
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        try:
            self._server, self._thread = start_http_server(port, addr, registry=self.registry)
        except OSError as e:
            raise DoaError(f"metrics: cannot listen on {addr}:{port} ({e.strerror or e})") from e
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)
