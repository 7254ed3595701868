"""What the fraud stack produced, read back over the compose network (tests/integration/
test_compose.py runs it in a container: ``python - MODE N TIMEOUT_S < compose_check.py``).

``wait``: return once the scorer's metrics say it learned at least ``N`` labels (or the time is
up). ``check``: wait so, then read the topology's output streams from the beginning until they
are idle for 3 s, and print one JSON line: per
stream the records and distinct event ids, outcomes by distinct join id and whether a repeat
ever disagreed with the first, the last metric, the drift events. Only the standard library
and doa: it runs in the app image, which has no tests/.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

STREAMS = ("predictions", "outcomes", "metrics", "drift", "unmatched", "fraud.dlq")


def read_all(address: str, topology: Any, streams: tuple[str, ...] = STREAMS,
             idle_s: float = 3.0) -> dict[str, list[Any]]:
    """Every record of ``streams``, from the beginning until ``idle_s`` without a new one."""
    from doa.client import Subscriber

    seen: dict[str, list[Any]] = {s: [] for s in streams}
    with Subscriber(streams, broker=address, topology=topology, from_beginning=True,
                    idle_timeout_s=idle_s) as sub:
        for event in sub:
            seen[event.stream].append(event)
    return seen


def summary(seen: dict[str, list[Any]]) -> dict[str, Any]:
    """The counts test_compose.py asserts on."""
    outcomes: dict[Any, dict[str, Any]] = {}
    disagreeing = 0
    for event in seen["outcomes"]:
        first = outcomes.setdefault(event["join"], dict(event))
        disagreeing += first != dict(event)
    metrics = sorted(seen["metrics"], key=lambda e: e["labels"])
    return {
        "records": {s: len(v) for s, v in seen.items()},
        "ids": {s: len({e.id for e in v}) for s, v in seen.items()},
        "predicted": len({e["join"] for e in seen["predictions"]}),
        "outcomes": len(outcomes),
        "outcome_repeats_disagreeing": disagreeing,
        "scored": sum(o["prediction"] is not None for o in outcomes.values()),
        "correct": sum(bool(o["correct"]) for o in outcomes.values()),
        "last_metric": dict(metrics[-1]) if metrics else None,
        "drift_positions": sorted(e["position"] for e in seen["drift"]),
    }


def learned(seen: dict[str, list[Any]]) -> int:
    """The most labels a metric record says the scorer learned."""
    return max((e["labels"] for e in seen["metrics"]), default=0)


def main(mode: str, n: int, timeout_s: float) -> dict[str, Any]:
    import os

    from doa.topology.loader import load_topology

    address = os.environ.get("DOA_BROKER", "kafka:9092")
    topology = load_topology("topologies/fraud.py")
    deadline = time.monotonic() + timeout_s
    while True:  # the metrics alone (few records) until the scorer learned n labels
        seen = read_all(address, topology, ("metrics",), 0.5)
        if learned(seen) >= n or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {"learned": learned(seen)} if mode == "wait" else summary(read_all(address, topology))


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3]))), flush=True)
