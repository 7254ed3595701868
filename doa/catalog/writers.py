"""A stream that nodes of two topologies on one broker write: refused, unless declared shared.

Within one topology, two nodes writing one stream is refused unless the stream is declared
``shared=True`` (:func:`doa.topology.validate.problems`). Across topologies the same holds:
:func:`doa.catalog.readers.refuse_running_problems` (called by
:func:`doa.engines.launch.prepare`, so by ``doa run`` and ``doa deploy``) and ``doa check
--broker`` read the other topologies' descriptions on ``_doa_topologies``
(:func:`doa.catalog.read.read_topologies`: one read of that topic and nothing else) and
:func:`foreign_writers` compares them with the topology.

Which descriptions count (:func:`others`):

- per topology, its latest description (by ``started_at``): the topic keeps descriptions of
  every process, and on tansu, which never compacts, every one ever written;
- this topology's own descriptions are not another's (it may have run before);
- a topology renamed or deleted leaves its descriptions behind: they count as long as the
  catalog shows them, i.e. while a process of it runs or was seen within
  :data:`doa.catalog.collect.FORGET_S` (a day), unless ``doa catalog forget NAME`` forgot
  them (:mod:`doa.catalog.forget`). The message says whether the other topology runs, and if
  not when it was last seen.

A broker whose ``_doa_topologies`` cannot be read is a warning in the log, not a refusal: the
descriptions are what doa says about itself, not what the broker enforces.

Examples
--------
>>> from doa import Topology
>>> from doa.catalog.describe import describe_process
>>> from doa.catalog.read import BrokerView
>>> def scoring(name, node):
...     t = Topology(name)
...     _ = t.stream("tx", schema="doa.Metric")
...     _ = t.stream("scores", schema="doa.Metric")
...     _ = t.node(reads="tx", writes="scores", name=node)(lambda state, batch: (state, []))
...     return t
>>> walk, flaky = scoring("walk", "fraud"), scoring("walkvflaky", "m")
>>> view = BrokerView("b:9092", now_ms=60_000)
>>> view.descriptions["walkvflaky/h/1"] = describe_process(flaky, ["m"], "kafka", 5.0,
...                                                        host="h", pid=1, now_ms=50_000)
>>> for line in foreign_writers(walk, others(view, "walk"), "b:9092", view.now_ms):
...     print(line)  # doctest: +NORMALIZE_WHITESPACE
stream 'scores' is written by node 'm' of topology 'walkvflaky' (running) too (described on
b:9092); declare it with shared=True if that is intended, or give this topology's stream
another name
>>> foreign_writers(flaky, others(view, "walkvflaky"), "b:9092", view.now_ms)
[]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from doa.catalog.collect import FORGET_S, latest_descriptions, processes
from doa.catalog.read import BrokerView
from doa.catalog.render import _ago
from doa.topology.topology import Topology


@dataclass(frozen=True)
class Other:
    """Another topology on the broker, as its latest description says.

    Parameters
    ----------
    name : the topology's name
    writes : per stream, the names of its nodes that write it (the dead-letter stream: all)
    reads : per stream, the names of its nodes that read it
    running : whether one of its processes is alive
    last_seen_ms : when one of its processes was last heard of (ms since the epoch)
    """

    name: str
    writes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    running: bool = False
    last_seen_ms: int = 0
    reads: dict[str, tuple[str, ...]] = field(default_factory=dict)


def others(view: BrokerView, own: str) -> list[Other]:
    """The topologies ``view``'s descriptions show, other than ``own``, that the catalog still
    shows (running, or seen within :data:`doa.catalog.collect.FORGET_S`)."""
    procs = processes(view)
    out = []
    for name, d in sorted(latest_descriptions(view).items()):
        mine = [p for p in procs if p["topology"] == name]
        if name == own or not mine:
            continue
        writes: dict[str, list[str]] = {}
        reads: dict[str, list[str]] = {}
        for n in d.get("nodes", ()):
            streams = [*n.get("writes", ()), *([d["dead_letters"]] if d.get("dead_letters")
                                               else [])]
            for s in dict.fromkeys(streams):
                writes.setdefault(s, []).append(n["name"])
            for s in dict.fromkeys(n.get("reads", ())):
                reads.setdefault(s, []).append(n["name"])
        out.append(Other(name, {s: tuple(ns) for s, ns in writes.items()},
                         any(p["alive"] for p in mine), max(p["last_seen"] for p in mine),
                         {s: tuple(ns) for s, ns in reads.items()}))
    return out


def foreign_writers(topology: Topology, described: Iterable[Other], broker: str,
                    now_ms: int) -> list[str]:
    """One line per stream that ``topology``'s nodes write, that is not declared shared, and
    that a node of another ``described`` topology writes too.

    Examples
    --------
    >>> from doa import Topology
    >>> t = Topology("t")
    >>> _ = t.stream("a", schema="doa.Metric")
    >>> _ = t.stream("b", schema="doa.Metric", shared=True)
    >>> _ = t.node(reads="a", writes=["a", "b"], name="n")(lambda state, batch: (state, []))
    >>> gone = Other("old", {"a": ("x", "y"), "b": ("x",)}, running=False, last_seen_ms=0)
    >>> print(*foreign_writers(t, [gone], "b:1", now_ms=7_200_000))  # doctest: +ELLIPSIS
    stream 'a' is written by nodes 'x' and 'y' of topology 'old' (not running, last seen 2 h
    ago) too (described on b:1; a topology not seen for 24 h no longer counts, and `doa catalog
    forget old` forgets it now); declare it ...
    """
    described = list(described)
    out = []
    for name, stream in topology.streams.items():
        if stream.shared or not topology.writers(name):
            continue
        hits = [o for o in described if o.writes.get(name)]
        if not hits:
            continue
        who = " and ".join(f"{_nodes(o.writes[name])} of topology {o.name!r} "
                           f"({_state(o, now_ms)})" for o in hits)
        stale = _stale(hits)
        out.append(f"stream {name!r} is written by {who} too (described on {broker}{stale}); "
                   "declare it with shared=True if that is intended, or give this topology's "
                   "stream another name")
    return out


def foreign_commands(topology: Topology, described: Iterable[Other], broker: str,
                     now_ms: int) -> list[str]:
    """One line per stream that a node of ``topology`` takes commands from (a model node's
    versions, a learner's control: :meth:`doa.node.NodeKind.commands`), that is not declared
    shared, and that a node of another ``described`` topology reads too: a version published
    for one would switch both (walk 8: two topologies' nodes named ``scorer`` read
    ``scorer.versions``, and a publish to one put its model live in the other).

    Examples
    --------
    >>> from doa import Topology
    >>> t = Topology("risk")
    >>> _ = t.stream("txns", schema="doa.Metric")
    >>> _ = t.stream("scores", schema="doa.Prediction")
    >>> _ = t.model("scorer", reads="txns", writes="scores", model="rule.pkl",
    ...             features=["value"])
    >>> twin = Other("riskb", reads={"scorer.versions": ("scorer",)}, running=True,
    ...              last_seen_ms=0)
    >>> print(*foreign_commands(t, [twin], "b:1", now_ms=0))  # doctest: +NORMALIZE_WHITESPACE
    stream 'scorer.versions', the versions of node 'scorer', is read by node 'scorer' of
    topology 'riskb' (running) too (described on b:1): what is sent to it would switch both;
    give node 'scorer' its own (versions='risk.scorer.versions'), or declare the stream with
    shared=True if that is intended
    >>> gone = Other("riskb", reads={"scorer.versions": ("scorer",)}, last_seen_ms=0)
    >>> print(*foreign_commands(t, [gone], "b:1", now_ms=7_200_000))  # doctest: +ELLIPSIS
    stream ... of topology 'riskb' (not running, last seen 2 h ago) too (described on b:1; a \
topology not seen for 24 h no longer counts, and `doa catalog forget riskb` forgets it now): ...
    """
    described = list(described)
    out = []
    for node in topology.nodes.values():
        for name, role in node.spec.commands().items():
            stream = topology.streams.get(name)
            hits = [o for o in described if o.reads.get(name)]
            if stream is None or stream.shared or not hits:
                continue
            who = " and ".join(f"{_nodes(o.reads[name])} of topology {o.name!r} "
                               f"({_state(o, now_ms)})" for o in hits)
            out.append(f"stream {name!r}, the {role} of node {node.name!r}, is read by {who} "
                       f"too (described on {broker}{_stale(hits)}): what is sent to it would "
                       "switch both; "
                       f"give node {node.name!r} its own ({role}='{topology.name}.{node.name}."
                       f"{role}'), or declare the stream with shared=True if that is intended")
    return out


def _stale(hits: list[Other]) -> str:
    """What to say of the topologies of ``hits`` that no longer run: when they stop counting,
    and how to forget them now."""
    gone = [o.name for o in hits if not o.running]
    return "" if not gone else (
        f"; a topology not seen for {FORGET_S / 3600:g} h no longer counts, and "
        + " and ".join(f"`doa catalog forget {g}`" for g in gone) + " forgets it now")


def _nodes(names: tuple[str, ...]) -> str:
    """``node 'a'`` or ``nodes 'a' and 'b'``.

    >>> _nodes(("a",)), _nodes(("a", "b"))
    ("node 'a'", "nodes 'a' and 'b'")
    """
    return ("node " if len(names) == 1 else "nodes ") + " and ".join(map(repr, names))


def _state(other: Other, now_ms: int) -> str:
    return "running" if other.running else (
        f"not running, last seen {_ago(now_ms, other.last_seen_ms)}")
