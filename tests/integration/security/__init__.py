"""Issue 12: what a tenant, a forged caller or a host root must not get."""
