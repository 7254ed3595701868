"""Example topology: sensor readings -> per-sensor running statistics -> alerts.

Each sensor's state is its count, mean and sum of squared deviations (Welford's algorithm);
a reading more than ``THRESHOLD`` standard deviations from its sensor's mean (after
``WARMUP`` readings) becomes an alert. The step is pure: no I/O, no clock, no globals.
"""

from __future__ import annotations

import math
from typing import Any

from doa import Topology

THRESHOLD = 3.0
WARMUP = 10

topology = Topology("sensors", dead_letters="sensors.dlq")
readings = topology.stream("readings", schema="sensors.reading", key="sensor_id", partitions=4)
alerts = topology.stream("alerts", schema="sensors.alert", key="sensor_id", partitions=4)


@topology.node(reads=readings, writes=alerts, state=dict)
def flag_spikes(state: dict[str, list[float]], batch: list[Any]) -> tuple[Any, list[Any]]:
    """Per sensor: z-score of each reading against the sensor's running mean and std."""
    out = []
    for r in batch:
        stats = state.setdefault(r["sensor_id"], [0.0, 0.0, 0.0])  # count, mean, m2
        n, mean, m2 = stats
        std = math.sqrt(m2 / n) if n > 1 else 0.0
        z = (r["value"] - mean) / std if std > 0 else 0.0
        if n >= WARMUP and abs(z) > THRESHOLD:
            out.append((r, {"sensor_id": r["sensor_id"], "ts": r["ts"], "value": r["value"],
                            "mean": mean, "std": std, "zscore": z, "count": int(n) + 1,
                            "location": r["location"]}))
        n += 1
        delta = r["value"] - mean
        mean += delta / n
        m2 += delta * (r["value"] - mean)
        stats[:] = [n, mean, m2]
    return state, out


def demo_source(n: int, seed: int = 7) -> Any:
    """Readings from 20 sensors, with a spike every ~200 and a malformed payload every ~1000."""
    import random

    rnd = random.Random(seed)
    for i in range(n):
        if i % 1000 == 999:
            yield "readings", b"\x00not an avro record"
            continue
        sensor = f"sensor-{rnd.randrange(20):02d}"
        value = 20.0 + rnd.gauss(0.0, 1.0) + (15.0 if rnd.random() < 0.005 else 0.0)
        yield "readings", {"sensor_id": sensor, "ts": 1_700_000_000_000 + i, "value": value,
                           "location": {"lat": 52.0 + int(sensor[-2:]) / 100, "lon": 4.3},
                           "unit": "C"}
