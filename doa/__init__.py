"""doa: a runtime for data-oriented ML deployment.

Streams are typed Kafka topics, nodes are pure steps whose state lives in the log.

Examples
--------
>>> import doa
>>> doa.Topology("example").name
'example'

A model node's delayed labels and its candidates' promotion policy
(``topology.model(..., labels=doa.Labels(...), promote_when=doa.Promote(...))``; a
learner's ``challenger=`` takes the same policy):

>>> doa.Labels("settlements", label="paid", outcomes="outcomes").label_wait_ms
60000
>>> doa.Promote(margin=0.02, after_labels=300)
Promote(margin=0.02, after_labels=300)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from doa.errors import (
    CompatibilityError,
    DecodeError,
    DoaError,
    EncodeError,
    SchemaError,
    StepError,
    TopologyError,
    Unacknowledged,
)
from doa.events import Event, Out
from doa.node import Node, Stream
from doa.topology.topology import Topology

if TYPE_CHECKING:
    from doa.model.labels import Labels, Promote

__version__ = "0.1.0"

__all__ = [
    "CompatibilityError",
    "DecodeError",
    "DoaError",
    "EncodeError",
    "Event",
    "Labels",
    "Node",
    "Out",
    "Promote",
    "SchemaError",
    "StepError",
    "Stream",
    "Topology",
    "TopologyError",
    "Unacknowledged",
    "__version__",
]


def __getattr__(name: str) -> Any:
    """``Labels`` and ``Promote``, imported when first asked for: ``doa.model`` brings numpy,
    which every ``doa`` command paid for at start (~0.15 s, seconds on a busy machine)."""
    if name in ("Labels", "Promote"):
        from doa.model import labels

        return getattr(labels, name)
    raise AttributeError(f"module 'doa' has no attribute {name!r}")
