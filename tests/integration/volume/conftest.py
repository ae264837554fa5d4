"""Fixtures of the volume tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from kubenova.devcluster import ClusterAccess
from tests.integration.volume.cluster import strip_and_delete


@pytest.fixture
def volume_namespace(namespace: str, apiserver: ClusterAccess) -> Iterator[str]:
    """The test's namespace; Volumes left in it are stripped of finalizers and deleted."""
    yield namespace
    strip_and_delete(apiserver, namespace, "volumes")
