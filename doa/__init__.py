"""doa: a runtime for data-oriented ML deployment.

Streams are typed Kafka topics, nodes are pure steps whose state lives in the log.

Examples
--------
>>> import doa
>>> doa.Topology("example").name
'example'
"""

from __future__ import annotations

from doa.errors import (
    CompatibilityError,
    DecodeError,
    DoaError,
    EncodeError,
    SchemaError,
    StepError,
    TopologyError,
)
from doa.events import Event, Out
from doa.node import Node, Stream
from doa.topology.topology import Topology

__version__ = "0.1.0"

__all__ = [
    "CompatibilityError",
    "DecodeError",
    "DoaError",
    "EncodeError",
    "Event",
    "Node",
    "Out",
    "SchemaError",
    "StepError",
    "Stream",
    "Topology",
    "TopologyError",
    "__version__",
]
