"""Pure parts of the agent's network service: desired state, names, dnsmasq, nftables."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kubenova.agents.network import names
from kubenova.agents.network.dhcp import dnsmasq_arguments, hosts_file
from kubenova.agents.network.nat import ruleset
from kubenova.agents.network.spec import GatewaySpec, Mode, host_network

PORTS = [
    {"instance": "web-0", "host": "h1", "ip": "10.1.0.2", "mac": "52:54:00:00:00:02"},
    {
        "instance": "db.primary",
        "host": "h2",
        "ip": "10.1.0.3",
        "mac": "52:54:00:00:00:03",
        "floatingIP": "198.51.100.9",
    },
]


def a_network(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"namespace": "t", "name": "lan"},
        "spec": {"mode": "vxlan", "cidr": "10.1.0.0/24", "dns": ["9.9.9.9"]},
        "status": {
            "segmentId": 1000,
            "bridge": "knb-12345678",
            "gateway": "10.1.0.1",
            "gatewayHost": "gw",
            "tunnelEndpoints": [
                {"host": "h1", "ip": "192.168.0.1"},
                {"host": "h2", "ip": "192.168.0.2"},
                {"host": "gw", "ip": "192.168.0.3"},
            ],
            "ports": PORTS,
        }
        | status,
    }


def test_a_compute_host_gets_the_segment_and_every_other_peer() -> None:
    net = host_network(a_network(), "h1", underlay_ip="192.168.0.1", physical_interface=None)
    assert net is not None
    assert (net.mode, net.segment_id, net.bridge) == (Mode.VXLAN, 1000, "knb-12345678")
    assert net.peers == ("192.168.0.2", "192.168.0.3")
    assert net.gateway is None


def test_the_gateway_host_also_gets_dhcp_hosts_and_floating_ips() -> None:
    net = host_network(a_network(), "gw", underlay_ip="192.168.0.3", physical_interface=None)
    assert net is not None
    gateway = net.gateway
    assert gateway is not None
    assert gateway.gateway == ipaddress.IPv4Address("10.1.0.1")
    assert [(h.mac, h.ip) for h in gateway.hosts] == [
        ("52:54:00:00:00:02", "10.1.0.2"),
        ("52:54:00:00:00:03", "10.1.0.3"),
    ]
    assert [(f.floating_ip, f.fixed_ip) for f in gateway.floating] == [("198.51.100.9", "10.1.0.3")]
    assert gateway.forwards  # a floating IP needs forwarding even without the router
    assert gateway.mtu == 1450


def test_nothing_is_wired_before_the_operator_allocated_the_network() -> None:
    body = a_network(bridge=None)
    assert host_network(body, "h1", underlay_ip="192.168.0.1", physical_interface=None) is None
    body = a_network(segmentId=None)
    assert host_network(body, "h1", underlay_ip="192.168.0.1", physical_interface=None) is None


def test_what_cannot_be_wired_says_what_is_missing() -> None:
    with pytest.raises(ValueError, match="needs this host's underlay address"):
        host_network(a_network(), "h1", underlay_ip=None, physical_interface=None)
    vlan = a_network()
    vlan["spec"]["mode"] = "vlan"
    with pytest.raises(ValueError, match="needs a physical interface"):
        host_network(vlan, "h1", underlay_ip=None, physical_interface=None)
    net = host_network(vlan, "h1", underlay_ip=None, physical_interface="eno2")
    assert net is not None
    assert (net.trunk, net.peers) == ("eno2", ())


def test_device_names_are_deterministic_and_fit_ifnamsiz() -> None:
    bridge = "knb-0a1b2c3d"
    derived = [names.vxlan_device(bridge), names.vlan_device(bridge), *names.ovs_veth(bridge)]
    assert derived == ["knx-0a1b2c3d", "knv-0a1b2c3d", "knp-0a1b2c3d", "kno-0a1b2c3d"]
    assert all(len(name) <= 15 for name in [*derived, names.ovs_bridge("enp129s0f1np1")])
    assert names.ovs_bridge("eth0") == names.ovs_bridge("eth0")
    with pytest.raises(ValueError, match="not a kubenova bridge name"):
        names.vxlan_device("br0")


def gateway(**overrides: Any) -> GatewaySpec:
    net = host_network(a_network(), "gw", underlay_ip="192.168.0.3", physical_interface=None)
    assert net is not None
    assert net.gateway is not None
    spec = net.gateway
    return GatewaySpec(**{**spec.__dict__, **overrides})


def test_dnsmasq_serves_static_leases_only_with_router_dns_and_mtu(tmp_path: Any) -> None:
    args = dnsmasq_arguments("knb-12345678", gateway(), tmp_path)
    assert "--dhcp-range=10.1.0.0,static,255.255.255.0,12h" in args
    assert "--interface=knb-12345678" in args
    assert "--no-ping" in args
    assert "--port=0" in args
    assert "--dhcp-option=option:router,10.1.0.1" in args
    assert "--dhcp-option=option:dns-server,9.9.9.9" in args
    assert "--dhcp-option=option:mtu,1450" in args
    isolated = dnsmasq_arguments("knb-12345678", gateway(floating=()), tmp_path)
    assert "--dhcp-option=option:router" in isolated  # no router: no default route handed out
    assert hosts_file(gateway()) == (
        "52:54:00:00:00:02,10.1.0.2,web-0\n52:54:00:00:00:03,10.1.0.3,db\n"
    )


def test_the_ruleset_isolates_nats_and_maps_floating_ips_one_to_one() -> None:
    script = ruleset("knb-12345678", gateway(router=True), "ext0")
    assert script.startswith("add table ip kubenova-12345678\ndelete table ip kubenova-12345678\n")
    assert 'iifname "knb-12345678" oifname "knb-12345678" accept' in script
    assert "ip daddr 198.51.100.9 dnat to 10.1.0.3" in script
    assert 'ip saddr 10.1.0.3 oifname "ext0" snat to 198.51.100.9' in script
    assert 'ip saddr 10.1.0.0/24 oifname "ext0" masquerade' in script
    assert script.index("snat to") < script.index("masquerade")  # 1:1 before the rest
    assert 'iifname "knb-12345678" counter drop' in script
    # nft 1.0.6 wants a newline before every closing brace
    assert all(line.strip() == "}" or "}" not in line for line in script.splitlines())


def test_without_router_or_floating_ips_nothing_is_forwarded() -> None:
    script = ruleset("knb-12345678", gateway(floating=(), router=False), "ext0")
    forward = script[script.index("chain forward") : script.index("chain prerouting")]
    accepts = [
        line.strip()
        for line in forward.splitlines()
        if line.strip().endswith("accept") and "policy" not in line
    ]
    assert accepts == ['iifname "knb-12345678" oifname "knb-12345678" accept']
    assert "masquerade" not in script
    assert 'oifname "knb-12345678" counter drop' in script


def test_guests_reach_only_dhcp_and_dns_of_the_host_itself() -> None:
    script = ruleset("knb-12345678", gateway(router=True), "ext0")
    inbound = script[script.index("chain input") : script.index("chain forward")]
    rules = [line.strip() for line in inbound.splitlines()[2:] if line.strip() not in ("}", "")]
    assert rules == [
        'iifname "knb-12345678" ct state established,related accept',
        'iifname "knb-12345678" udp dport 67 accept',
        'iifname "knb-12345678" ip daddr 10.1.0.1 udp dport 53 accept',
        'iifname "knb-12345678" ip daddr 10.1.0.1 tcp dport 53 accept',
        'iifname "knb-12345678" counter drop',
    ]


def test_the_nic_plan_follows_spec_order_with_inventory_macs_and_short_taps() -> None:
    from kubenova.agents.compute.nics import nic_plan  # noqa: PLC0415
    from kubenova.errors import TemporaryError  # noqa: PLC0415

    instance = {
        "metadata": {"uid": "0f7c1a2e-uid"},
        "spec": {"networks": [{"network": "b"}, {"network": "a"}]},
        "status": {
            "addresses": [
                {"network": "a", "ip": "10.0.0.2", "mac": "52:54:00:00:00:0a"},
                {"network": "b", "ip": "10.1.0.2", "mac": "52:54:00:00:00:0b"},
            ]
        },
    }
    plan = nic_plan(instance, {"a": "knb-aaaaaaaa", "b": "knb-bbbbbbbb"})
    assert [(n.network, n.bridge, n.mac) for n in plan] == [
        ("b", "knb-bbbbbbbb", "52:54:00:00:00:0b"),
        ("a", "knb-aaaaaaaa", "52:54:00:00:00:0a"),
    ]
    assert len({n.tap for n in plan}) == 2
    assert all(len(n.tap) <= 15 for n in plan)
    with pytest.raises(TemporaryError, match="network a: not wired yet"):
        nic_plan(instance, {"b": "knb-bbbbbbbb"})
