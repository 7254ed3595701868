"""Deploying a topology: docker-compose files (:mod:`doa.deploy.compose`)."""

from __future__ import annotations
