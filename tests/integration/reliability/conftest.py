"""Fixtures of the reliability tests, shared with the volume tests (a volume host on the
fake export driver, a simulated compute host, a namespace whose Volumes are cleaned up)."""

from tests.integration.volume.conftest import volume_namespace
from tests.integration.volume.test_volume_operator import compute_host, daemon, store_host

__all__ = ["compute_host", "daemon", "store_host", "volume_namespace"]
