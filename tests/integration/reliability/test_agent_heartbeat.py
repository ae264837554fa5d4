"""A healthy agent process is never judged dead by the operator the tests run.

The test operator calls a host NotReady after LEASE_TIMEOUT (3 s) without a heartbeat; the
agent renews its Lease every `--heartbeat-interval` (10 s unless told). Agents the tests
started with the default were NotReady for 7 s of every 10, and an Instance deleted then had
its agent finalizer dropped by the operator (before fencing) while its domain still ran: the
real-VM test failed whenever the deletion fell into such a window. Neither does a driver
call that blocks for longer than the timeout stop the heartbeat: driver calls run in threads,
never on the agent's event loop.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import an_instance
from tests.e2e.test_lifecycle_fake import wait_phase
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import LEASE_TIMEOUT, OperatorProcess
from tests.integration.operator.test_scheduling import apply, catalog, host_ready, wait_ready

pytestmark = pytest.mark.apiserver

# Loaded by the agent process only (its PYTHONPATH): every FakeComputeDriver.spawn blocks first.
SLOW_SPAWN = """
import time

from kubenova.agents.compute.fake import FakeComputeDriver

_spawn = FakeComputeDriver.spawn


def _slow_spawn(self, spec):
    time.sleep({seconds})
    return _spawn(self, spec)


FakeComputeDriver.spawn = _slow_spawn
"""


def not_ready_events(cluster: ClusterAccess, host: str) -> list[str]:
    """Messages of the HostNotReady Events the operator recorded for this Host (by its uid:
    an earlier Host of the same name in the session does not count)."""
    uid = json.loads(cluster.kubectl("get", "host", host, "-o", "json").stdout)["metadata"]["uid"]
    listing = cluster.kubectl(
        "get",
        "events",
        "-n",
        "default",
        "--field-selector",
        f"reason=HostNotReady,involvedObject.uid={uid}",
        "-o",
        "json",
    )
    return [str(item.get("message")) for item in json.loads(listing.stdout)["items"]]


def ready_throughout(cluster: ClusterAccess, host: str, seconds: float) -> None:
    """`host` is Ready at every look for `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert host_ready(cluster, host) == "True", f"{host} went NotReady"
        time.sleep(0.3)


def test_an_agent_process_stays_ready_for_longer_than_its_default_heartbeat_interval(
    apiserver: ClusterAccess, operator: OperatorProcess, agents: AgentFactory
) -> None:
    agents.start("beat-steady")
    wait_ready(apiserver, "beat-steady")
    # Longer than the agent's default interval (10 s): with it, the host would lapse here.
    ready_throughout(apiserver, "beat-steady", 4 * LEASE_TIMEOUT)
    assert not_ready_events(apiserver, "beat-steady") == []


def test_the_heartbeat_goes_on_while_a_driver_call_blocks_longer_than_the_lease_timeout(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    tmp_path: Path,
) -> None:
    hook = tmp_path / "slow-driver"
    hook.mkdir()
    blocked = 2 * LEASE_TIMEOUT
    (hook / "sitecustomize.py").write_text(SLOW_SPAWN.format(seconds=blocked))
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH")) if p)
    agents.start("beat-busy", env={"PYTHONPATH": path})
    wait_ready(apiserver, "beat-busy")
    flavor = catalog(apiserver, memory=256)
    applied = time.monotonic()
    apply(apiserver, an_instance("slow", namespace, flavor=flavor))
    ready_throughout(apiserver, "beat-busy", blocked)
    body = wait_phase(apiserver, namespace, "slow", "Running")
    assert body["status"]["host"] == "beat-busy"
    # The spawn really blocked for the whole time the host was watched.
    assert time.monotonic() - applied >= blocked
    assert not_ready_events(apiserver, "beat-busy") == []
