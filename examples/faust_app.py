"""A Faust app of your own with doa nodes mounted.

Run it with ``DOA_BROKER=HOST:PORT python examples/faust_app.py worker``.
"""

from __future__ import annotations

import os

import faust

import doa.engines.faust
from doa.engines.launch import prepare
from doa.topology.loader import load_topology

broker = os.environ.get("DOA_BROKER", "127.0.0.1:9092")
topology = load_topology("topologies/sensors.py")
prepare(topology, broker)  # create the topics, register the schemas

app = faust.App("sensors-app", broker=f"kafka://{broker}", **doa.engines.faust.app_settings())
doa.engines.faust.mount(app, topology)  # flag_spikes: the agent doa.sensors.flag_spikes
alerts = app.topic("alerts", key_serializer="raw", value_serializer="raw")


@app.agent(alerts)
async def page(stream):  # your own Faust code reads doa's streams as raw bytes
    codec = topology.codec("alerts")
    async for value in stream:
        alert = codec.decode(value)
        print(f"page: {alert['sensor_id']} z={alert['zscore']:.1f}")


if __name__ == "__main__":
    app.main()
