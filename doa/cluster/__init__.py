"""What doa does to a Kafka cluster: client security, topics, the schema registry,
reachability, signed state."""

from __future__ import annotations
