"""What a running ``doa run`` process tells the tools around it: Prometheus metrics and
OpenLineage run events, both off unless asked for.

:func:`observe` starts what is configured for one run's workers and returns the
:class:`Observers` to close when the run ends: ``/metrics`` (:mod:`doa.observe.metrics`) when a
port is given (``--metrics-port``, ``DOA_METRICS_PORT``), OpenLineage events
(:mod:`doa.observe.openlineage`) when the OpenLineage client is configured. The per-batch
counters the metrics read are kept by :class:`doa.observe.meter.MeteredRunner`, always.

Examples
--------
>>> Observers().close()  # nothing configured: nothing to stop
>>> Observers().metrics_port is None
True
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from doa.observe.metrics import DoaCollector, MetricsServer, metrics_port
from doa.observe.openlineage import LineageEmitter, configured
from doa.topology.topology import Topology

__all__ = ["Observers", "check_extras", "observe"]


def check_extras(port: int | None, environ: Mapping[str, str] | None = None) -> None:
    """Fail in one line, before anything starts, if metrics are asked for (``port`` or
    ``DOA_METRICS_PORT``) without ``doa[metrics]``, or OpenLineage is configured without
    ``doa[openlineage]``.

    >>> check_extras(None, {})  # nothing asked for: nothing needed
    """
    from doa.errors import DoaError
    from doa.observe import metrics, openlineage

    env = os.environ if environ is None else environ
    if (port is not None or metrics_port(env) is not None) and \
            not _installed("prometheus_client"):
        raise DoaError(metrics.MISSING)
    by = configured(env)
    if by and not _installed("openlineage.client"):
        raise DoaError(openlineage.MISSING.format(by))


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # its parent package is missing
        return False


class Observers:
    """The metrics server and the OpenLineage emitter of one run (either may be None)."""

    def __init__(self, metrics: MetricsServer | None = None,
                 lineage: LineageEmitter | None = None) -> None:
        self.metrics = metrics
        self.lineage = lineage

    @property
    def metrics_port(self) -> int | None:
        """The port ``/metrics`` is served on (None: not served)."""
        return self.metrics.port if self.metrics is not None else None

    def close(self, error: BaseException | None = None) -> None:
        """Send the last run events (FAIL if ``error``) and stop serving ``/metrics``.
        Idempotent: a second call does nothing."""
        lineage, self.lineage = self.lineage, None
        metrics, self.metrics = self.metrics, None
        try:
            if lineage is not None:
                lineage.close(error)
        finally:
            if metrics is not None:
                metrics.close()


def observe(topology: Topology, address: str, workers: Sequence[Any], *,
            port: int | None = None, environ: Mapping[str, str] | None = None,
            say: Callable[[str], None] | None = None) -> Observers:
    """Start the metrics server (``port``, else ``DOA_METRICS_PORT``; None: none) and the
    OpenLineage emitter (if the client is configured) for ``workers`` on ``address``.

    A missing extra is a :class:`doa.errors.DoaError` of one line, raised before anything
    starts.
    """
    env = os.environ if environ is None else environ
    port = port if port is not None else metrics_port(env)
    lineage_by = configured(env)
    nodes = [w.node for w in workers]
    lineage = LineageEmitter(topology, address, nodes) if lineage_by else None
    server = MetricsServer(DoaCollector(topology.name, workers), port) \
        if port is not None else None
    if lineage is not None:
        lineage.start()
    if say is not None and server is not None:
        say(f"metrics on http://localhost:{server.port}/metrics")
    if say is not None and lineage is not None:
        say(f"OpenLineage run events of {', '.join(n.name for n in nodes)} "
            f"(configured by {lineage_by})")
    return Observers(server, lineage)
