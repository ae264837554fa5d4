"""Fixtures the attack tests share with the auth suite."""

from tests.integration.auth.conftest import tenancy

__all__ = ["tenancy"]
