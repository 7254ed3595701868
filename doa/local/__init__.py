"""Brokers for development and tests: the embedded one (tansu) and Apache Kafka from
Maven Central."""

from __future__ import annotations
