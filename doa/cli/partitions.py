"""``doa partitions``: grow a topology's topics on a broker to the partition counts it declares.

A stream declared with more partitions than its topic has (``partitions=6`` for a topic made
with 4), and the state topics of the nodes that read it (a state topic has its input stream's
count), are grown in one CreatePartitions request. Without ``--yes`` it only says what it would
do (the broker validates the request; nothing changes). Kafka cannot remove partitions: a
stream with more than declared is refused, and nothing is grown. A key may move to another
partition: its state starts anew there.

Examples
--------
>>> from doa.cluster.admin import Growth
>>> for line in plan_lines([Growth("events", 4, 6), Growth("t.n.state", 4, 6)], False):
...     print(line)
would grow 'events': 4 -> 6 partitions
would grow 't.n.state': 4 -> 6 partitions
keys move: a key's state starts anew on its new partition
"""

from __future__ import annotations

import click

from doa.cli.console import out
from doa.cli.options import broker_option, need_broker
from doa.cluster.admin import Growth

KEYS_MOVE = "keys move: a key's state starts anew on its new partition"


def plan_lines(plan: list[Growth], applied: bool) -> list[str]:
    """The lines ``doa partitions`` prints for ``plan``: one per topic, then (not yet
    ``applied``) that keys move.

    Parameters
    ----------
    plan : the topics to grow, in the topology's order
    applied : whether they were grown (``--yes``) or would be (a dry run)

    Returns
    -------
    list of str
        The lines, without markup.
    """
    verb = "grew" if applied else "would grow"
    lines = [f"{verb} {g.name!r}: {g.have} -> {g.declared} partitions" for g in plan]
    return lines if applied else [*lines, KEYS_MOVE]


@click.command("partitions")
@click.argument("topology")
@broker_option
@click.option("--yes", is_flag=True,
              help="Grow the topics (default: a dry run that says what it would grow).")
def partitions_cmd(topology: str, broker: str | None, yes: bool) -> None:
    """Grow TOPOLOGY's topics that have fewer partitions on the broker than it declares: its
    streams, and its nodes' state topics to their input streams' counts, in one go. A key may
    move to another partition, where its state starts anew. Without --yes, a dry run."""
    from doa.cluster.admin import grow_partitions, partition_plan, topology_topics
    from doa.cluster.reach import check_reachable
    from doa.cluster.streams import broker_topics
    from doa.topology.loader import load_topology

    address = need_broker(broker)
    t = load_topology(topology)
    t.check()
    check_reachable(address)
    existing = broker_topics(address)
    plan = partition_plan(t, existing)  # refuses to shrink, before anything changes
    missing = [s.name for s in topology_topics(t) if s.name not in existing]
    if not plan:
        out.print(f"topology {t.name!r} on {address}: no topic has fewer partitions than "
                  "declared, nothing to grow"
                  + (f" ({len(missing)} not created yet: `doa deploy` creates them)"
                     if missing else ""))
        return
    grow_partitions(address, plan, apply=yes)
    for line in plan_lines(plan, yes):
        out.print(line, markup=False)
    if not yes:
        out.print(f"dry run: nothing changed on {address}; `doa partitions {topology} "
                  f"--broker {address} --yes` grows them", markup=False)
