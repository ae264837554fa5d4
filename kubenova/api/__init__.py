"""kubenova's API types: one module per version, data only (no logic, no imports of ours)."""
