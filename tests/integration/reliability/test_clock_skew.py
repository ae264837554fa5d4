"""Liveness by the observer's clock: the operator decides NotReady from when it *saw* a
host's Lease change, so an agent whose clock is minutes off neither flaps nor stays Ready
once it stops renewing. The operator runs with a 3 s lease timeout (tests.fixtures.operator).
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from kubenova.devcluster import ClusterAccess
from tests.fixtures.operator import OperatorProcess
from tests.integration.operator.test_scheduling import host_ready, wait_ready
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

SKEW = timedelta(minutes=5)
LEASE_TIMEOUT = 3.0  # the operator fixture's --lease-timeout


def stays_ready(cluster: ClusterAccess, names: tuple[str, ...], seconds: float) -> None:
    """Every host is Ready at every look for `seconds` (several lease timeouts)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name in names:
            assert host_ready(cluster, name) == "True", f"{name} flapped to NotReady"
        time.sleep(0.3)


@pytest.mark.parametrize("skew", [-SKEW, SKEW], ids=["behind", "ahead"])
def test_a_skewed_host_is_ready_while_it_renews_and_not_ready_once_it_stops(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    skew: timedelta,
) -> None:
    hosts.add("h-skewed", clock_skew=skew)
    hosts.add("h-true")
    wait_ready(apiserver, "h-skewed", "h-true")
    stays_ready(apiserver, ("h-skewed", "h-true"), 3 * LEASE_TIMEOUT)

    hosts.stop_heartbeat("h-skewed")
    stopped = time.monotonic()
    eventually(
        lambda: host_ready(apiserver, "h-skewed") == "False",
        timeout=4 * LEASE_TIMEOUT,
        what="h-skewed NotReady",
    )
    # Not before the timeout (it was seen renewing until it stopped), and soon after it.
    assert time.monotonic() - stopped >= LEASE_TIMEOUT - 1.0
    assert host_ready(apiserver, "h-true") == "True"
