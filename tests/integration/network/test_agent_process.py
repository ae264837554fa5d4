"""`kubenova-agent --services network` as a real process: wires, survives its own crash
without a second dnsmasq, and cleans up when the Network goes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster import ClusterAccess
from tests.builders import a_network, as_yaml
from tests.fixtures.agent import HEARTBEAT_INTERVAL
from tests.fixtures.netns import NetnsLab
from tests.fixtures.operator import OperatorProcess
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.netns]


@dataclass
class Agent:
    """One `kubenova-agent` subprocess that can be SIGKILLed and started again."""

    argv: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def network_host_agent(
    apiserver: ClusterAccess, netns_lab: NetnsLab, tmp_path: Path
) -> Iterator[Agent]:
    """The agent of host `gw` (a namespace of the lab), network service only."""
    netns = netns_lab.add_host("gw", "192.168.80.3")
    (tmp_path / "gw").mkdir()
    (tmp_path / "gw" / "node.xml").write_text("<node></node>\n")
    argv = [
        str(Path(sys.executable).with_name("kubenova-agent")),
        "--host-name=gw",
        "--services=network",
        f"--netns={netns}",
        "--underlay-ip=192.168.80.3",
        f"--libvirt-uri=test://{tmp_path / 'gw' / 'node.xml'}",
        f"--state-dir={tmp_path / 'gw'}",
        f"--kubeconfig={apiserver.kubeconfig}",
        "--capacity=vcpus=8,memoryMiB=8192,diskGiB=100",
        f"--heartbeat-interval={HEARTBEAT_INTERVAL}",
    ]
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    agent = Agent(argv, tmp_path / "gw.log", env=env)
    agent.start()
    yield agent
    agent.stop()


def bridge_of(cluster: ClusterAccess, namespace: str) -> str | None:
    result = cluster.kubectl("get", "network", "lan", "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    body: dict[str, Any] = json.loads(result.stdout)
    status = body.get("status") or {}
    return status.get("bridge") if status.get("gatewayHost") == "gw" else None


def wire_lan(
    apiserver: ClusterAccess, lab: NetnsLab, agent: Agent, namespace: str, cidr: str
) -> tuple[str, int]:
    """Apply Network `lan` gatewayed on gw; its bridge and dnsmasq pid once fully wired."""
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(a_network("lan", namespace, cidr=cidr)))
    bridge = eventually(lambda: bridge_of(apiserver, namespace), timeout=30, what="gateway")
    eventually(lambda: bridge in lab.links("gw"), timeout=30, what=f"{bridge} on gw")
    (dnsmasq,) = eventually(lambda: lab.dnsmasq_pids("gw"), timeout=30, what="dnsmasq on gw")
    # The bridge and dnsmasq come first, the log line when the whole convergence is done.
    eventually(lambda: f"as {bridge}" in agent.log(), timeout=30, what="converged once")
    return bridge, dnsmasq


def test_the_agent_process_runs_the_network_service(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    network_host_agent: Agent,
    netns_lab: NetnsLab,
    namespace: str,
) -> None:
    lab, agent = netns_lab, network_host_agent
    bridge, first = wire_lan(apiserver, lab, agent, namespace, "10.44.0.0/24")

    agent.kill()  # SIGKILL: dnsmasq lives on in its own session ...
    assert lab.dnsmasq_pids("gw") == [first]
    agent.start()  # ... and the restarted agent adopts it instead of starting another
    eventually(lambda: "watching" in agent.log() or "wired" in agent.log(), what="agent up")
    try:
        eventually(lambda: agent.log().count(f"as {bridge}") >= 2, timeout=30, what="re-converged")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the agent's log ends:\n{agent.log()[-4000:]}") from None
    assert lab.dnsmasq_pids("gw") == [first]

    apiserver.kubectl("delete", "network", "lan", "-n", namespace)
    eventually(lambda: bridge not in lab.links("gw"), timeout=30, what="bridge removed")
    eventually(lambda: lab.dnsmasq_pids("gw") == [], timeout=30, what="dnsmasq stopped")
    assert "ERROR" not in agent.log()


def test_a_dnsmasq_that_dies_is_started_again_by_the_resync(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    network_host_agent: Agent,
    netns_lab: NetnsLab,
    namespace: str,
) -> None:
    """A dead dnsmasq sends no watch event: the agent's periodic resync starts it again."""
    lab, agent = netns_lab, network_host_agent
    agent.stop()
    agent.argv.append("--resync-interval=1")
    agent.start()
    _, first = wire_lan(apiserver, lab, agent, namespace, "10.46.0.0/24")

    os.kill(first, signal.SIGKILL)
    (second,) = eventually(
        lambda: [pid for pid in lab.dnsmasq_pids("gw") if pid != first],
        timeout=30,
        what="a new dnsmasq on gw",
    )
    assert lab.dnsmasq_pids("gw") == [second]
    assert "ERROR" not in agent.log()


def test_a_network_that_only_lost_its_label_while_the_agent_was_down_keeps_its_bridge(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    network_host_agent: Agent,
    netns_lab: NetnsLab,
    namespace: str,
) -> None:
    """The start-up sweep reads a bridge's Network again: status still wiring gw keeps it."""
    lab, agent = netns_lab, network_host_agent
    bridge, _ = wire_lan(apiserver, lab, agent, namespace, "10.45.0.0/24")

    agent.stop()
    # As cluster admin (past the placement policy), with the operator stopped so that it
    # cannot put the label back before the agent starts: only the label goes.
    network_operator.stop()
    try:
        apiserver.kubectl("label", "network", "lan", "-n", namespace, "wired.kubenova.io/gw-")
        before = len(agent.log())
        agent.start()

        def restarted_log() -> str:
            return agent.log()[before:]

        eventually(
            lambda: (
                "kept though unlabelled" in restarted_log()
                or f"removing {bridge}" in restarted_log()
            ),
            timeout=30,
            what="the restarted agent's start-up sweep",
        )
        assert f"removing {bridge}" not in restarted_log(), "the sweep removed a wired bridge"
        assert "1 kept though unlabelled, 0 removed" in restarted_log()
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:  # kept also when read again (every 5 s)
            assert bridge in lab.links("gw")
            assert lab.dnsmasq_pids("gw")
            time.sleep(0.5)

        # Deleted properly while still unlabelled (the operator's finalizer holds it): the
        # agent, reading the kept Network again, sees it being deleted and unwires it.
        apiserver.kubectl("delete", "network", "lan", "-n", namespace, "--wait=false")
        eventually(lambda: bridge not in lab.links("gw"), timeout=30, what="bridge removed")
        eventually(lambda: lab.dnsmasq_pids("gw") == [], timeout=30, what="dnsmasq stopped")
    finally:
        network_operator.start()
    eventually(
        lambda: apiserver.kubectl("get", "network", "lan", "-n", namespace, check=False).returncode,
        timeout=30,
        what="lan deleted",
    )
    assert "ERROR" not in agent.log()
