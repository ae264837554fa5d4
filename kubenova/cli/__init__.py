"""The `kubenova` command line."""
