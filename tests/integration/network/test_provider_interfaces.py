"""The agent gives networks only the host interfaces on its `--provider-interfaces` list, and
never one that carries an IP address (issue 12, item 2): a real network host in a netns.

Networks that the API admitted (a cluster admin made them) still do not get the host's
addressed link or an interface the agent was not told it may use: the Network gets a
Warning Event naming the interface, the agent logs it, and the interface is untouched.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from kubenova.agents.network.assembly import NetworkOptions
from kubenova.agents.network.provider import ProviderInterfaces
from kubenova.devcluster import ClusterAccess
from tests.builders import a_network, as_yaml
from tests.fixtures.netns import NetnsLab, sh
from tests.fixtures.operator import OperatorProcess
from tests.integration.network.agents import NetworkAgents
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.netns]

GW_IP = "192.168.81.3"


def warning_reasons(cluster: ClusterAccess, namespace: str, network: str) -> str:
    out = cluster.kubectl(
        "get", "events", "-n", namespace, "--field-selector", "type=Warning", "-o", "json"
    ).stdout
    return " ".join(
        f"{e.get('reason')}: {e.get('message') or e.get('note')}"
        for e in json.loads(out)["items"]
        if (e.get("involvedObject") or e.get("regarding") or {}).get("name") == network
    )


def master_of(netns: str, interface: str) -> str | None:
    [link] = json.loads(sh("ip", "-n", netns, "-j", "link", "show", interface).stdout)
    return link.get("master")


def test_the_agent_refuses_an_addressed_or_unlisted_interface_and_wires_a_listed_one(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    hosts: SimulatedHosts,
    network_agents: NetworkAgents,
    netns_lab: NetnsLab,
    namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    netns = netns_lab.add_host("gw", GW_IP)  # uplink0 carries GW_IP; trunk0 has no address
    # spare0: unaddressed and unlisted (a veth: this kernel has no dummy devices)
    sh("ip", "-n", netns, "link", "add", "spare0", "type", "veth", "peer", "name", "spare1")
    hosts.add("gw", services=("network",), underlay_ip=GW_IP)
    network_agents.start(
        NetworkOptions(
            host="gw",
            state_dir=tmp_path / "gw",
            underlay_ip=GW_IP,
            provider_interfaces=ProviderInterfaces.parse(["uplink0,trunk0"]),
            netns=netns,
        )
    )
    networks = {
        "mgmt": a_network("mgmt", namespace, mode="flat", cidr="10.61.0.0/24",
                          physicalInterface="uplink0"),
        "spare": a_network("spare", namespace, mode="flat", cidr="10.62.0.0/24",
                           physicalInterface="spare0"),
        "trunk": a_network("trunk", namespace, mode="flat", cidr="10.63.0.0/24",
                           physicalInterface="trunk0"),
    }  # fmt: skip
    apiserver.kubectl("apply", "-f", "-", input=as_yaml(*networks.values()))

    eventually(
        lambda: "InterfaceHasAddress" in warning_reasons(apiserver, namespace, "mgmt"),
        timeout=45,
        what="the addressed uplink0 refused",
    )
    assert "uplink0" in warning_reasons(apiserver, namespace, "mgmt")
    eventually(
        lambda: "InterfaceNotAllowed" in warning_reasons(apiserver, namespace, "spare"),
        timeout=45,
        what="the unlisted spare0 refused",
    )
    # The listed, unaddressed trunk0 is wired: it becomes a port of the network's bridge.
    trunk_bridge = eventually(lambda: master_of(netns, "trunk0"), timeout=45, what="trunk0 wired")
    assert trunk_bridge.startswith("knb-")

    # Nothing was done to the refused interfaces: no bridge took them, uplink0 keeps its IP.
    assert master_of(netns, "uplink0") is None
    assert master_of(netns, "spare0") is None
    addresses = sh("ip", "-n", netns, "-o", "-4", "addr", "show", "uplink0").stdout
    assert f"{GW_IP}/24" in addresses
    logged = caplog.text
    assert f"{namespace}/mgmt on gw: InterfaceHasAddress" in logged
    assert f"{namespace}/spare on gw: InterfaceNotAllowed" in logged
