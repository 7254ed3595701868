"""Declaring a topology: streams, nodes, checks, the Mermaid graph, loading files.

``from doa.topology import Topology, Stream, Node`` keeps working.
"""

from __future__ import annotations

from doa.node import Node, Stream
from doa.topology.topology import Topology

__all__ = ["Node", "Stream", "Topology"]
