"""Forget a topology that no longer runs: ``doa catalog forget NAME``.

A topology renamed or retired leaves its descriptions on ``_doa_topologies``; until it has
not been seen for :data:`doa.catalog.collect.FORGET_S` (a day) the catalog lists it and
``doa run``, ``doa deploy`` and ``doa check --broker`` count the streams its nodes write
(:mod:`doa.catalog.writers`). Nothing is deleted to forget it (tansu never compacts; on
Kafka the topic is compacted by key): one more record says so, a **forget record**
(partition :data:`~doa.catalog.describe.DESCRIPTIONS`, key: the topology's name)::

    {"type": "forgotten", "topology": str, "at": ms, "host": str,
     "processes": [the process keys forgotten, TOPOLOGY/HOST/PID]}

The descriptions of the processes it names no longer count
(:meth:`doa.catalog.read.BrokerView.described`), whatever they say or when they are written
(a silent process's late "stopped" record included). A process of the topology started
afterwards has a key of its own: the topology counts again, without comparing clocks. A
compacted topic keeps the latest forget record of a topology: each one names every process
forgotten before too.

:func:`forget_record` refuses, one line each, a topology no description names, one forgotten
already, and one with a process alive now (a running topology describes itself again).

Examples
--------
>>> from doa import Topology
>>> from doa.catalog.describe import describe_process
>>> from doa.catalog.read import BrokerView
>>> t = Topology("old")
>>> _ = t.stream("scores", schema="doa.Metric")
>>> view = BrokerView("b:9092", now_ms=7_200_000)
>>> view.descriptions["old/h/1"] = {**describe_process(t, [], "kafka", 5.0, host="h", pid=1,
...                                                    now_ms=0), "status": "stopped"}
>>> record = forget_record(view, "old", host="me")
>>> record["type"], record["processes"], record["at"]
('forgotten', ['old/h/1'], 7200000)
>>> forget_record(view, "olld")
Traceback (most recent call last):
...
doa.errors.DoaError: no topology 'olld' is described on b:9092 (described: old)
"""

from __future__ import annotations

import socket
from typing import Any

from doa.catalog.collect import hosts, processes
from doa.catalog.describe import DESCRIPTIONS, TOPIC, encode
from doa.catalog.read import BrokerView, read_topologies
from doa.errors import DoaError


def forget_record(view: BrokerView, name: str, *, host: str | None = None) -> dict[str, Any]:
    """The forget record of topology ``name`` as ``view`` shows it, or a one-line
    :class:`~doa.errors.DoaError` saying why it cannot be forgotten.

    Examples
    --------
    >>> view = BrokerView("b:9092", now_ms=10_000, forgotten={"old": {"old/h/1"}},
    ...                   descriptions={"old/h/1": {"topology": "old", "started_at": 0},
    ...                                 "new/h/2": {"topology": "new", "host": "h", "pid": 2,
    ...                                             "started_at": 9_000}})
    >>> forget_record(view, "old")
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: topology 'old' is forgotten on b:9092 already (no process of it ran
    since)
    >>> forget_record(view, "new")
    Traceback (most recent call last):
    ...
    doa.errors.DoaError: topology 'new' runs on b:9092 now (process h:2 alive); stop it
    before forgetting it
    """
    if view.warnings:
        raise DoaError(f"could not read every description on {view.broker} "
                       f"({'; '.join(view.warnings)}): nothing forgotten")
    described = view.described()
    keys = sorted(k for k, d in described.items() if d.get("topology") == name)
    if not keys:
        if name in view.forgotten:
            raise DoaError(f"topology {name!r} is forgotten on {view.broker} already (no "
                           "process of it ran since)")
        names = sorted({str(d.get("topology")) for d in described.values()})
        raise DoaError(f"no topology {name!r} is described on {view.broker} "
                       f"({'described: ' + ', '.join(names) if names else 'none is'})")
    alive = [p for p in processes(view) if p["topology"] == name and p["alive"]]
    if alive:
        raise DoaError(f"topology {name!r} runs on {view.broker} now (process"
                       f"{'es' if len(alive) > 1 else ''} {hosts(alive)} alive); stop it before "
                       "forgetting it")
    return {"type": "forgotten", "topology": name, "at": view.now_ms,
            "host": host or socket.gethostname(),
            "processes": sorted({*view.forgotten.get(name, ()), *keys})}


def forget(address: str, name: str, *, timeout_s: float = 5.0) -> list[str]:
    """Forget topology ``name`` on the broker at ``address`` (:func:`forget_record`, then the
    record written and acknowledged); the keys of the processes forgotten now."""
    view = read_topologies(address, timeout_s=timeout_s)
    record = forget_record(view, name)
    _send(address, name, record, timeout_s)
    before = view.forgotten.get(name, set())
    return [k for k in record["processes"] if k not in before]


def _send(address: str, name: str, record: dict[str, Any], timeout_s: float) -> None:
    from kafka import KafkaProducer

    from doa.cluster.security import kafka_python_options

    producer = KafkaProducer(bootstrap_servers=address, **kafka_python_options(address),
                             acks="all", linger_ms=0, max_block_ms=int(timeout_s * 1000),
                             request_timeout_ms=int(timeout_s * 1000), retries=2,
                             client_id="doa-catalog-forget")
    try:
        producer.send(TOPIC, key=name.encode(), value=encode(record),
                      partition=DESCRIPTIONS).get(timeout=timeout_s * 2)
    finally:
        producer.close(timeout=timeout_s)
