"""Pure parts of the operator's network code: parsing, settings, gateway choice, status."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from kubenova.operator.networks import status as st
from kubenova.operator.networks.errors import InvalidCidr, SegmentRangeExhausted
from kubenova.operator.networks.gateways import Candidate, choose
from kubenova.operator.networks.ports import PortView
from kubenova.operator.networks.records import network_record
from kubenova.operator.networks.settings import Range, from_environment


def a_body(**spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"uid": "u-1", "namespace": "t", "name": "lan", "generation": 2},
        "spec": {"mode": "vxlan", "cidr": "10.1.0.0/24"} | spec,
    }


def test_a_network_record_defaults_its_gateway_and_reserves_it() -> None:
    record = network_record(a_body())
    assert record.gateway == ipaddress.IPv4Address("10.1.0.1")
    assert record.capacity == 253
    assert record.reserved(ipaddress.IPv4Address("10.1.0.1")) == "the gateway"
    assert len(record.bridge) <= 15
    assert record.bridge == network_record(a_body()).bridge  # deterministic


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"cidr": "10.1.0.1/24"}, "is not an IPv4 network address"),
        ({"cidr": "10.1.0.0/30"}, "prefix between /8 and /29"),
        ({"cidr": "nonsense"}, "is not an IPv4 network address"),
        ({"gateway": "10.2.0.1"}, "must be a host address of 10.1.0.0/24"),
        ({"gateway": "10.1.0.255"}, "must be a host address"),
    ],
)
def test_bad_cidrs_and_gateways_say_what_to_change(spec: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidCidr, match=message):
        network_record(a_body(**spec))


def test_settings_come_from_the_environment_and_bad_ones_are_refused() -> None:
    settings = from_environment(
        {
            "KUBENOVA_VLAN_RANGES": "100-199, 300",
            "KUBENOVA_VNI_RANGES": "5000-5009",
            "KUBENOVA_FLOATING_IP_POOL": "198.51.100.16/29",
        }
    )
    assert settings.vlan_ranges == (Range(100, 199), Range(300, 300))
    assert settings.ranges("vxlan") == (Range(5000, 5009),)
    assert [str(a) for a in settings.floating_pool or ()] == ["198.51.100.17", "198.51.100.22"]
    assert from_environment({}).floating_pool is None
    with pytest.raises(ValueError, match=r"KUBENOVA_VLAN_RANGES: '0-5000' must lie within 1-4094"):
        from_environment({"KUBENOVA_VLAN_RANGES": "0-5000"})
    with pytest.raises(ValueError, match="KUBENOVA_VNI_RANGES: 'x' is not N or N-M"):
        from_environment({"KUBENOVA_VNI_RANGES": "x"})
    with pytest.raises(ValueError, match="KUBENOVA_FLOATING_IP_POOL"):
        from_environment({"KUBENOVA_FLOATING_IP_POOL": "300.1.1.1-300.1.1.2"})


def test_the_gateway_host_is_kept_spread_and_never_doubles_a_subnet() -> None:
    record = network_record(a_body())
    busy = Candidate("busy", True, (ipaddress.IPv4Network("10.9.0.0/24"),))
    idle = Candidate("idle", True, ())
    twin = Candidate("twin", True, (ipaddress.IPv4Network("10.1.0.0/16"),))
    down = Candidate("down", False, ())
    assert choose(record, None, [busy, idle, twin, down]) == "idle"
    assert choose(record, None, [busy, twin]) == "busy"
    assert choose(record, None, [twin, down]) is None
    assert choose(record, "down", [busy, down]) == "down"  # NotReady keeps what it serves
    assert choose(record, "gone", [busy]) == "busy"


def port(ip: str, host: str | None, floating: str | None = None) -> PortView:
    return PortView(
        "uid-" + ip, "vm-" + ip.rsplit(".", 1)[1], host, ip, "52:54:00:00:00:01", floating
    )


def test_status_lists_hosts_ports_usage_and_tunnel_endpoints() -> None:
    record = network_record(a_body())
    observation = st.Observation(
        record,
        2,
        segment_id=1000,
        gateway_host="gw",
        ports=[port("10.1.0.2", "h1"), port("10.1.0.3", "h2", "198.51.100.9")],
        underlay={"h1": "192.168.0.1", "h2": "192.168.0.2", "gw": "192.168.0.3"},
    )
    status = st.desired_status(observation, None)
    assert status["hosts"] == ["gw", "h1", "h2"]
    assert (status["ipsUsed"], status["ipsFree"]) == (2, 251)
    assert status["ports"][1] == {
        "instance": "vm-3",
        "host": "h2",
        "ip": "10.1.0.3",
        "mac": "52:54:00:00:00:01",
        "floatingIP": "198.51.100.9",
    }
    assert [e["host"] for e in status["tunnelEndpoints"]] == ["gw", "h1", "h2"]
    (ready,) = status["conditions"]
    assert (ready["status"], ready["reason"]) == ("True", "Allocated")
    assert ready["observedGeneration"] == 2
    assert not st.status_differs(status, st.desired_status(observation, status["conditions"]))


def test_missing_underlay_and_problems_are_reported_as_conditions() -> None:
    record = network_record(a_body())
    no_underlay = st.Observation(
        record, 1, segment_id=7, gateway_host="gw", ports=[port("10.1.0.2", "h1")], underlay={}
    )
    (ready,) = st.desired_status(no_underlay, None)["conditions"]
    assert ready["reason"] == "NoUnderlayAddress"
    assert "--underlay-ip" in ready["message"]
    problem = st.Observation(None, 1, problem=SegmentRangeExhausted("all used"))
    status = st.desired_status(problem, None)
    assert status["conditions"][0]["reason"] == "SegmentRangeExhausted"
    assert "segmentId" not in status


def test_labels_follow_the_wired_hosts() -> None:
    current = {"app": "x", "wired.kubenova.io/h1": "true", "wired.kubenova.io/old": "true"}
    assert st.label_changes(current, ["h1", "h2"]) == {
        "wired.kubenova.io/h2": "true",
        "wired.kubenova.io/old": None,
    }
    assert st.label_changes({"wired.kubenova.io/h1": "true"}, ["h1"]) == {}
