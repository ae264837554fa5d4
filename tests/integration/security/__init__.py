"""Issue 12: each attack a tenant, a forged caller or a host could try, refused and harmless."""
