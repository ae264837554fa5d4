"""Fixtures of the operator tests shared with the leader tests: operator replicas on a
PostgreSQL inventory (`replicas`, `pg_inventory`)."""

from tests.integration.reliability.test_leader import pg_inventory, replicas

__all__ = ["pg_inventory", "replicas"]
