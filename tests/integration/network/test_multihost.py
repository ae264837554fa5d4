"""Tenant networks end to end: operator + the network service of three simulated hosts.

Hosts h1 and h2 run Instances; `gw` is the network host (DHCP, router, floating IPs) with
an "outside" namespace on its external interface. Endpoints are namespaces plugged into
a host's bridge with the Instance's MAC, standing in for guest taps (one libvirtd serves
every simulated host here, so a real guest's tap would sit in the root namespace; see
docs in kubenova/agents/network/README.md).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.network.assembly import NetworkOptions
from kubenova.devcluster import ClusterAccess
from tests.builders import a_flavor, a_network, an_image, an_instance, as_yaml
from tests.fixtures.netns import NetnsLab
from tests.fixtures.operator import OperatorProcess
from tests.integration.network.agents import NetworkAgents
from tests.integration.network.conftest import FLOATING_POOL
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver, pytest.mark.netns]

UNDERLAY = {"h1": "192.168.60.1", "h2": "192.168.60.2", "gw": "192.168.60.3"}


def apply(cluster: ClusterAccess, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs))


def get(cluster: ClusterAccess, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def addresses(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(cluster, "instance", namespace, name)
        found = ((body or {}).get("status") or {}).get("addresses")
        return found[0] if found else None

    return eventually(probe, timeout=30, what=f"addresses of {name}")


def wired(lab: NetnsLab, network: dict[str, Any], hosts: list[str]) -> str:
    """Wait until the Network lists its ports and every host has its bridge; the bridge."""

    def probe() -> str | None:
        bridge = (network_body() or {}).get("status", {}).get("bridge")
        return bridge if bridge and all(bridge in lab.links(h) for h in hosts) else None

    def network_body() -> dict[str, Any] | None:
        return get(network["cluster"], "network", network["ns"], network["name"])

    return eventually(probe, timeout=30, what=f"{network['name']} wired on {hosts}")


def test_two_tenants_on_three_hosts(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    hosts: SimulatedHosts,
    network_agents: NetworkAgents,
    netns_lab: NetnsLab,
    tmp_path: Path,
) -> None:
    lab = netns_lab
    for name, ip in UNDERLAY.items():
        lab.add_host(name, ip)
    outside = lab.add_outside("gw", "203.0.113.1", "203.0.113.2", FLOATING_POOL)
    for name in ("h1", "h2"):
        hosts.add(name, underlay_ip=UNDERLAY[name])
    hosts.add("gw", services=("network",), underlay_ip=UNDERLAY["gw"])
    for name, ip in UNDERLAY.items():
        network_agents.start(
            NetworkOptions(
                host=name,
                state_dir=tmp_path / name,
                underlay_ip=ip,
                external_interface="ext0" if name == "gw" else None,
                netns=lab.hosts[name],
                events=True,
            )
        )
    red, blue = "t-red-" + lab.prefix, "t-blue-" + lab.prefix
    for ns in (red, blue):
        apiserver.kubectl("create", "namespace", ns)
    apply(apiserver, a_flavor("t.net", vcpus=1, memory=128, disk=1), an_image("test-image"))
    apply(
        apiserver,
        a_network("lan", red, cidr="10.10.0.0/24", router={"enabled": True}),
        a_network("lan", blue, cidr="10.20.0.0/24"),
    )
    placements = {(red, "a1"): "h1", (red, "a2"): "h2", (blue, "b1"): "h1", (blue, "b2"): "h2"}
    for (ns, name), host in placements.items():
        nic: dict[str, Any] = {"network": "lan", "floatingIP": name == "a1"}
        apply(
            apiserver,
            an_instance(name, ns, flavor="t.net", networks=[nic], placement={"host": host}),
        )
    nics = {key: addresses(apiserver, *key) for key in placements}
    bridges = {
        ns: wired(lab, {"cluster": apiserver, "ns": ns, "name": "lan"}, ["h1", "h2", "gw"])
        for ns in (red, blue)
    }
    assert bridges[red] != bridges[blue]

    # endpoints with the Instances' MACs get exactly the inventory's addresses over DHCP
    endpoints = {}
    for (ns, name), host in placements.items():
        endpoint = lab.plug(host, bridges[ns], nics[(ns, name)]["mac"], name)
        assert endpoint.dhcp() == nics[(ns, name)]["ip"], f"{name} leased another address"
        endpoints[name] = endpoint
    a1, a2, b1, b2 = (endpoints[n] for n in ("a1", "a2", "b1", "b2"))

    # same network, different hosts: over VXLAN
    assert a1.ping(nics[(red, "a2")]["ip"])
    assert b2.ping(nics[(blue, "b1")]["ip"])

    # two tenants cannot reach each other: routed (through the gateway host) ...
    red_sources = (
        f"ether saddr {{ {nics[(red, 'a1')]['mac']}, {nics[(red, 'a2')]['mac']} }}",
        "ip saddr 10.10.0.0/24",
        "arp saddr ip 10.20.0.200",
        "ip saddr 10.20.0.0/24",  # control: blue's own traffic is counted
    )
    for name in ("b1", "b2"):
        lab.count_ingress(endpoints[name].netns, *red_sources)
    assert not a1.ping(nics[(blue, "b1")]["ip"], count=3)
    assert not a2.ping(nics[(blue, "b2")]["ip"], count=3)
    # ... nor on L2: a1 given an address in blue's subnet finds nobody (different VNI)
    lab_sh(lab, "ip", "-n", a1.netns, "addr", "add", "10.20.0.200/24", "dev", "eth0")
    assert not a1.ping(nics[(blue, "b1")]["ip"], count=3)
    for name in ("b1", "b2"):
        assert lab.counted(endpoints[name].netns)[:3] == [0, 0, 0], f"red reached {name}"
    assert b1.ping(nics[(blue, "b2")]["ip"])
    assert lab.counted(b2.netns)[3] > 0, "the counter counts nothing: the proof proves nothing"
    # ... and the gateway host counted the routed attempts as it dropped them (in red's
    # table or blue's, whichever hook runs first)
    ruleset = lab_sh(lab, "ip", "netns", "exec", lab.hosts["gw"], "nft", "list", "ruleset")
    dropped = sum(int(n) for n in re.findall(r"counter packets (\d+) bytes \d+ drop", ruleset))
    assert dropped >= 6, ruleset  # the 2 x 3 echo requests from red to blue

    # the floating IP reaches a1 from outside, and a1 reaches outside through the router
    floating = nics[(red, "a1")]["floatingIP"]
    assert floating.startswith("198.51.100.")
    assert lab.ping(outside, floating)
    assert a1.ping("203.0.113.1")
    assert not b1.ping("203.0.113.1")  # blue has no router

    # associated with and released from running servers: the gateway host's NAT follows
    # the status, while the guests (endpoints) keep running with their leases
    set_floating(apiserver, red, "a2", True)
    added = eventually(lambda: floating_of(apiserver, red, "a2"), timeout=30, what="a2's")
    assert added != floating
    eventually(lambda: lab.ping(outside, added, count=1), timeout=30, what=f"{added} reaches a2")
    # a flow open through a1's floating IP while it is released (one ping, one ICMP id:
    # one conntrack entry that would go on being NATed to a1) stops with the mapping
    replies = tmp_path / "pings"
    with replies.open("w") as out:
        flow = subprocess.Popen(
            ["ip", "netns", "exec", outside, "ping", "-i", "0.2", "-W", "1", floating],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        eventually(lambda: "bytes from" in replies.read_text(), timeout=10, what="the flow")
        set_floating(apiserver, red, "a1", False)
        eventually(lambda: floating_of(apiserver, red, "a1") is None, timeout=30, what="gone")

        def unmapped() -> bool:
            rules = lab_sh(lab, "ip", "netns", "exec", lab.hosts["gw"], "nft", "list", "ruleset")
            return floating not in rules and added in rules

        eventually(unmapped, timeout=30, what=f"{floating} gone from the gateway's NAT")
        time.sleep(0.5)  # the agent deletes the flows right after it replaced the table
        answered = replies.read_text().count("bytes from")
        time.sleep(1.5)  # 7 more echo requests of the open flow
        assert replies.read_text().count("bytes from") == answered, "the old flow still goes"
    finally:
        flow.kill()
        flow.wait()
    assert not lab.ping(outside, floating, count=1)
    assert lab.ping(outside, added, count=1)
    assert a1.ping("203.0.113.1")  # still routed out (masqueraded), as before

    # deleting everything leaves no device, dnsmasq or nftables rule behind
    for (ns, name), host in placements.items():
        lab.unplug(host, endpoints[name])
        apiserver.kubectl("patch", "instance", name, "-n", ns, "--type=json", "-p",
                          '[{"op":"remove","path":"/metadata/finalizers/1"}]')  # fmt: skip
        apiserver.kubectl("delete", "instance", name, "-n", ns, "--wait=false")
    for ns in (red, blue):
        apiserver.kubectl("delete", "network", "lan", "-n", ns, "--wait=false")

    def clean() -> bool:
        for host in ("h1", "h2", "gw"):
            assert not {link for link in lab.links(host) if link.startswith("kn")}, host
        assert "kubenova" not in lab.nft_tables("gw")
        assert lab.processes(lab.hosts["gw"]) == []
        return True

    eventually(clean, timeout=30, what="every host clean")
    for ns in (red, blue):
        apiserver.kubectl("delete", "namespace", ns, "--wait=false")


def floating_of(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    body = get(cluster, "instance", namespace, name) or {}
    found = (body.get("status") or {}).get("addresses") or [{}]
    return found[0].get("floatingIP")


def set_floating(cluster: ClusterAccess, namespace: str, name: str, on: bool) -> None:
    patch = [{"op": "add", "path": "/spec/networks/0/floatingIP", "value": on}]
    cluster.kubectl(
        "patch", "instance", name, "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )


def lab_sh(lab: NetnsLab, *argv: str) -> str:
    from tests.fixtures.netns import sh  # noqa: PLC0415

    return sh(*argv).stdout
