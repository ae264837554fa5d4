"""Security tests act through tests/integration/auth's tenancy (operator, webhook, LDAP)."""

from tests.integration.auth.conftest import tenancy

__all__ = ["tenancy"]
