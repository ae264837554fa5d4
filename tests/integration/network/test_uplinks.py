"""Uplinks on real devices in namespaces: VLAN tags on Open vSwitch (userspace datapath),
flat networks on the trunk interface, and the 802.1Q uplink's refusal on this kernel."""

from __future__ import annotations

import pytest

from kubenova.agents.network.linuxbridge import Dot1qUplink, FlatUplink, LinuxBridgeDriver
from kubenova.agents.network.namespace import Namespace
from kubenova.agents.network.ovs import OvsSettings, OvsUplink
from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.agents.network.vxlan import VxlanUplink
from kubenova.errors import UserError
from tests.fixtures.netns import NetnsLab, OvsSwitch, sh

pytestmark = pytest.mark.netns

RED, BLUE = "knb-00000red", "knb-0000blue"


def vlan(bridge: str, vid: int) -> HostNetwork:
    return HostNetwork(f"t/{bridge}", bridge, Mode.VLAN, vid, trunk="trunk0")


def address(lab: NetnsLab, netns: str, cidr: str) -> None:
    sh("ip", "-n", netns, "addr", "add", cidr, "dev", "eth0")


def test_vlan_tenants_on_open_vswitch_are_isolated_by_tag(
    netns_lab: NetnsLab, ovs_switches: dict[str, OvsSwitch]
) -> None:
    lab = netns_lab
    drivers = {}
    for host, ip in (("h1", "192.168.70.1"), ("h2", "192.168.70.2")):
        lab.add_host(host, ip)
        settings = OvsSettings(
            db=ovs_switches[host].db, datapath_type="netdev", disable_tx_offload=True
        )
        drivers[host] = LinuxBridgeDriver(
            Namespace(lab.hosts[host]), {Mode.VLAN: OvsUplink(settings)}
        )
    # Both tenants use the same subnet: only the VLAN tag keeps them apart.
    endpoints = {}
    for driver in drivers.values():
        driver.plug(vlan(RED, 100))
        driver.plug(vlan(BLUE, 200))
    for name, host, bridge, mac, ip in (
        ("r1", "h1", RED, "52:54:00:00:01:01", "10.0.0.1/24"),
        ("r2", "h2", RED, "52:54:00:00:01:02", "10.0.0.2/24"),
        ("b1", "h1", BLUE, "52:54:00:00:02:01", "10.0.0.11/24"),
        ("b2", "h2", BLUE, "52:54:00:00:02:02", "10.0.0.12/24"),
    ):
        endpoints[name] = lab.plug(host, bridge, mac, name)
        address(lab, endpoints[name].netns, ip)
    trunk_ports = [p for p in lab.links_of(lab.switch) if p.startswith("p")]
    for port in trunk_ports:
        lab.count_ingress(lab.switch, "vlan id 100", "vlan id 200", ifname=port)
    for name in ("b1", "b2"):
        lab.count_ingress(
            endpoints[name].netns, "ether saddr { 52:54:00:00:01:01, 52:54:00:00:01:02 }"
        )

    assert endpoints["r1"].ping("10.0.0.2")
    assert endpoints["b1"].ping("10.0.0.12")
    assert not endpoints["r1"].ping("10.0.0.12", count=3)
    assert not endpoints["r2"].ping("10.0.0.11", count=3)
    for name in ("b1", "b2"):
        assert lab.counted(endpoints[name].netns) == [0], f"a red frame reached {name}"
    tagged = [
        sum(c) for c in zip(*(lab.counted_on(lab.switch, p) for p in trunk_ports), strict=True)
    ]
    assert tagged[0] > 0, "no frame tagged 100 crossed the trunk"
    assert tagged[1] > 0, "no frame tagged 200 crossed the trunk"
    assert ovs_switches["h1"].vsctl("get", "port", "kno-00000red", "tag").strip() == "100"

    for name, endpoint in endpoints.items():
        lab.unplug({"r1": "h1", "b1": "h1"}.get(name, "h2"), endpoint)
    for driver in drivers.values():
        driver.unplug(RED)
        driver.unplug(BLUE)
    for host in drivers:
        assert not {link for link in lab.links(host) if link.startswith("kn")}
        assert ovs_switches[host].vsctl("list-br").strip() == ""  # the OVS bridge went too


def test_a_flat_network_rides_the_trunk_and_lets_it_go(netns_lab: NetnsLab) -> None:
    lab = netns_lab
    drivers = {}
    for host, ip in (("h1", "192.168.71.1"), ("h2", "192.168.71.2")):
        lab.add_host(host, ip)
        drivers[host] = LinuxBridgeDriver(Namespace(lab.hosts[host]), {Mode.FLAT: FlatUplink()})
        drivers[host].plug(HostNetwork("t/flat", RED, Mode.FLAT, trunk="trunk0"))
        drivers[host].plug(HostNetwork("t/flat", RED, Mode.FLAT, trunk="trunk0"))  # idempotent
    one = lab.plug("h1", RED, "52:54:00:00:03:01", "f1")
    two = lab.plug("h2", RED, "52:54:00:00:03:02", "f2")
    address(lab, one.netns, "10.3.0.1/24")
    address(lab, two.netns, "10.3.0.2/24")
    assert one.ping("10.3.0.2")
    state = drivers["h1"].describe(RED)
    assert state is not None
    assert state.segment == "flat"
    assert "trunk0" in state.ports
    with pytest.raises(UserError, match="already belongs to another bridge"):
        drivers["h1"].plug(HostNetwork("t/other", BLUE, Mode.FLAT, trunk="trunk0"))
    drivers["h1"].unplug(BLUE)
    lab.unplug("h1", one)
    drivers["h1"].unplug(RED)
    assert "trunk0" in lab.links("h1")  # never deleted: not ours
    assert RED not in lab.links("h1")
    assert "master" not in sh("ip", "-n", lab.hosts["h1"], "link", "show", "trunk0").stdout


def test_vxlan_peers_follow_the_network_and_the_device_follows_the_vni(netns_lab: NetnsLab) -> None:
    lab = netns_lab
    lab.add_host("h1", "192.168.72.1")
    driver = LinuxBridgeDriver(Namespace(lab.hosts["h1"]), {Mode.VXLAN: VxlanUplink()})
    base = {"key": "t/x", "bridge": RED, "mode": Mode.VXLAN, "local_ip": "192.168.72.1"}
    driver.plug(HostNetwork(**base, segment_id=7, peers=("192.168.72.2", "192.168.72.3")))
    driver.plug(HostNetwork(**base, segment_id=7, peers=("192.168.72.3", "192.168.72.4")))
    state = driver.describe(RED)
    assert state is not None
    assert (state.segment, state.segment_id) == ("vxlan", 7)
    assert state.peers == {"192.168.72.3", "192.168.72.4"}
    driver.plug(HostNetwork(**base, segment_id=8, peers=("192.168.72.3",)))
    state = driver.describe(RED)
    assert state is not None
    assert (state.segment_id, state.peers) == (8, {"192.168.72.3"})
    driver.unplug(RED)
    assert driver.describe(RED) is None
    assert driver.bridges() == set()


def test_the_8021q_uplink_says_what_to_do_on_a_kernel_without_it(netns_lab: NetnsLab) -> None:
    lab = netns_lab
    lab.add_host("h1", "192.168.73.1")
    driver = LinuxBridgeDriver(Namespace(lab.hosts["h1"]), {Mode.VLAN: Dot1qUplink()})
    if sh("modinfo", "8021q", check=False).returncode == 0:
        driver.plug(vlan(RED, 100))  # a kernel with 802.1Q: it simply works
        state = driver.describe(RED)
        assert state is not None
        assert (state.segment, state.segment_id) == ("vlan", 100)
    else:
        with pytest.raises(UserError, match=r"no 802.1Q VLAN support .* --vlan-backend ovs"):
            driver.plug(vlan(RED, 100))
    driver.unplug(RED)
    assert not {link for link in lab.links("h1") if link.startswith("kn")}
