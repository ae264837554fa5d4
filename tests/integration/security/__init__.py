"""Attacks a tenant, a forged webhook caller or a host could try: each refused, nothing changed."""
