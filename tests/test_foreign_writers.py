"""The comparison behind the refusal of a stream that two topologies write
(:mod:`doa.catalog.writers`), on descriptions built as ``doa run`` builds them: no broker."""

from __future__ import annotations

from typing import Any

from doa import Topology
from doa.catalog.describe import describe_process, heartbeat, process_key
from doa.catalog.read import BrokerView
from doa.catalog.writers import Other, foreign_writers, others

NOW = 100 * 3_600_000  # ms
B = "b:9092"


def scoring(name: str, node: str, *, reads: str = "tx", writes: str = "scores",
            shared: bool = False, dead_letters: str | None = None) -> Topology:
    t = Topology(name, dead_letters=dead_letters)
    for s in dict.fromkeys((reads, writes)):
        t.stream(s, schema="doa.Metric", shared=shared and s == writes)
    t.node(reads=reads, writes=writes, name=node)(lambda state, batch: (state, []))
    return t


def view(*processes: tuple[Topology, int, int, str]) -> BrokerView:
    """A view of processes (topology, pid, started at, status) described at ``NOW``."""
    v = BrokerView(B, NOW)
    for t, pid, started, status in processes:
        d: dict[str, Any] = {**describe_process(t, list(t.nodes), "kafka", 5.0, host="h",
                                                pid=pid, now_ms=started), "status": status}
        v.descriptions[process_key(d)] = d
    return v


def test_two_other_topologies_writing_it_are_named_in_one_line() -> None:
    v = view((scoring("a", "m"), 1, NOW - 1000, "running"),
             (scoring("b", "n"), 2, NOW - 3 * 3_600_000, "stopped"))
    assert foreign_writers(scoring("walk", "fraud"), others(v, "walk"), B, NOW) == [
        "stream 'scores' is written by node 'm' of topology 'a' (running) and node 'n' of "
        "topology 'b' (not running, last seen 3 h ago) too (described on b:9092; a topology "
        "not seen for 24 h no longer counts, and `doa catalog forget b` forgets it now); "
        "declare it with shared=True if that is "
        "intended, or give this topology's stream another name"]


def test_a_heartbeat_keeps_a_topology_running() -> None:
    v = view((scoring("a", "m"), 1, NOW - 3_600_000, "running"))
    d = next(iter(v.descriptions.values()))
    v.heartbeats[process_key(d)] = heartbeat(d, now_ms=NOW - 2000)
    [other] = others(v, "walk")
    assert (other.running, other.last_seen_ms, other.writes["scores"]) == (True, NOW - 2000,
                                                                           ("m",))


def test_what_is_not_refused() -> None:
    walk = scoring("walk", "fraud")
    v = view((scoring("walk", "old"), 1, NOW, "running"),  # its own earlier description
             (scoring("reader", "r", reads="scores", writes="other"), 2, NOW, "running"),
             (scoring("gone", "g"), 3, NOW - 25 * 3_600_000, "stopped"))  # forgotten
    assert [o.name for o in others(v, "walk")] == ["reader"]
    assert foreign_writers(walk, others(v, "walk"), B, NOW) == []
    shared = scoring("walk", "fraud", shared=True)
    assert foreign_writers(shared, [Other("a", {"scores": ("m",)}, True, NOW)], B, NOW) == []


def test_another_topologys_dead_letter_stream_is_written_by_all_its_nodes() -> None:
    v = view((scoring("a", "m", dead_letters="errors"), 1, NOW, "running"))
    refused = foreign_writers(scoring("walk", "fraud", writes="errors"), others(v, "walk"), B,
                              NOW)
    assert len(refused) == 1
    assert refused[0].startswith("stream 'errors' is written by node 'm' of topology 'a' ")
