"""The operator's Network controller and Instance hook against the real apiserver."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import select

from kubenova.devcluster import ClusterAccess
from kubenova.operator import inventory as inv
from kubenova.operator.inventory import quotas
from kubenova.operator.inventory.models import FloatingIp
from kubenova.operator.networks import ports
from tests.builders import a_flavor, a_network, an_image, an_instance, as_yaml
from tests.fixtures.operator import OperatorProcess
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

# Two VNIs only, to see the range run out.
OPERATOR_ENV = {"KUBENOVA_VNI_RANGES": "5000-5001"}


def get(cluster: ClusterAccess, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for entry in ((body or {}).get("status") or {}).get("conditions", []):
        if entry["type"] == type_:
            return entry
    return {}


def wait_condition(
    cluster: ClusterAccess, kind: str, ns: str, name: str, type_: str, status: str, reason: str
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        body = get(cluster, kind, ns, name)
        entry = condition(body, type_)
        return body if (entry.get("status"), entry.get("reason")) == (status, reason) else None

    return eventually(probe, timeout=30, what=f"{kind} {name} {type_}={status} ({reason})")


def apply(cluster: ClusterAccess, *docs: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs))


def events(cluster: ClusterAccess, namespace: str) -> str:
    return cluster.kubectl("get", "events", "-n", namespace, "-o", "json").stdout


def test_a_network_is_allocated_wired_and_released(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    apply(apiserver, a_flavor("t.net", vcpus=1, memory=128, disk=1), an_image("test-image"))
    hosts.add("h-compute", underlay_ip="192.168.50.1")
    apply(apiserver, a_network("blue", namespace, cidr="10.40.0.0/29"))
    # no network host yet: allocated, but DHCP has nowhere to run, and it says so
    body = wait_condition(
        apiserver, "network", namespace, "blue", "Ready", "False", "NoNetworkHost"
    )
    assert body["status"]["segmentId"] == 5000
    assert "add `network` to a Host's spec.services" in condition(body, "Ready")["message"]
    hosts.add("h-gw", services=("network",), underlay_ip="192.168.50.9")
    body = wait_condition(apiserver, "network", namespace, "blue", "Ready", "True", "Allocated")
    status = body["status"]
    assert status["gatewayHost"] == "h-gw"
    assert status["gateway"] == "10.40.0.1"
    assert status["bridge"].startswith("knb-")
    assert len(status["bridge"]) <= 15
    assert (status["ipsUsed"], status["ipsFree"]) == (0, 5)
    assert body["metadata"]["labels"] == {"wired.kubenova.io/h-gw": "true"}
    assert "kubenova.io/operator" in body["metadata"]["finalizers"]

    apply(
        apiserver,
        an_instance("vm-a", namespace, flavor="t.net", networks=[{"network": "blue"}]),
        an_instance(
            "vm-b",
            namespace,
            flavor="t.net",
            networks=[{"network": "blue", "ip": "10.40.0.6", "floatingIP": True}],
        ),
    )
    vm_a = wait_condition(
        apiserver, "instance", namespace, "vm-a", "Scheduled", "True", "Scheduled"
    )
    vm_b = wait_condition(
        apiserver, "instance", namespace, "vm-b", "Scheduled", "True", "Scheduled"
    )
    (addr_a,) = vm_a["status"]["addresses"]
    (addr_b,) = vm_b["status"]["addresses"]
    assert addr_a["ip"] == "10.40.0.2"
    assert addr_a["network"] == "blue"
    assert addr_b == {
        "network": "blue",
        "ip": "10.40.0.6",
        "mac": addr_b["mac"],
        "floatingIP": "198.51.100.17",
    }

    def wired() -> dict[str, Any] | None:
        net = get(apiserver, "network", namespace, "blue")
        return net if net and net["status"].get("ipsUsed") == 2 else None

    status = eventually(wired, what="two ports on blue")["status"]
    assert status["hosts"] == ["h-compute", "h-gw"]
    assert status["ipsFree"] == 3
    assert status["tunnelEndpoints"] == [
        {"host": "h-compute", "ip": "192.168.50.1"},
        {"host": "h-gw", "ip": "192.168.50.9"},
    ]
    assert [(p["instance"], p["ip"], p["mac"], p.get("floatingIP")) for p in status["ports"]] == [
        ("vm-a", "10.40.0.2", addr_a["mac"], None),
        ("vm-b", "10.40.0.6", addr_b["mac"], "198.51.100.17"),
    ]

    # the same address again is refused with a reason the user can act on
    apply(
        apiserver,
        an_instance(
            "vm-c", namespace, flavor="t.net", networks=[{"network": "blue", "ip": "10.40.0.6"}]
        ),
    )
    refused = wait_condition(
        apiserver, "instance", namespace, "vm-c", "Scheduled", "False", "AddressUnavailable"
    )
    assert (
        "10.40.0.6 of Network blue is already in use" in condition(refused, "Scheduled")["message"]
    )
    engine = inv.make_engine(inventory_url)
    # Refused inside the claim's transaction: nothing was claimed, then given back.
    assert inv.find_claim(engine, refused["metadata"]["uid"]) is None
    engine.dispose()
    apiserver.kubectl("delete", "instance", "vm-c", "-n", namespace)

    # a Network in use is not let go; deleting its Instances releases everything
    apiserver.kubectl("delete", "network", "blue", "-n", namespace, "--wait=false")
    wait_condition(apiserver, "network", namespace, "blue", "Ready", "False", "InUse")
    for name in ("vm-a", "vm-b"):
        drop_agent_finalizer(apiserver, namespace, name)
        apiserver.kubectl("delete", "instance", name, "-n", namespace, "--wait=false")
    eventually(lambda: get(apiserver, "network", namespace, "blue") is None, what="blue gone")
    engine = inv.make_engine(inventory_url)
    assert ports.ports_of(engine, vm_a["metadata"]["uid"]) == []
    with engine.connect() as connection:
        left = connection.exec_driver_sql(
            "SELECT (SELECT count(*) FROM fixed_ips), (SELECT count(*) FROM floating_ips),"
            " (SELECT count(*) FROM segment_ids), (SELECT count(*) FROM networks)"
        ).one()
    engine.dispose()
    assert tuple(left) == (0, 0, 0, 0)


def drop_agent_finalizer(cluster: ClusterAccess, namespace: str, name: str) -> None:
    """What the host's agent does on delete (no agent runs in this test)."""
    cluster.kubectl(
        "patch",
        "instance",
        name,
        "-n",
        namespace,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers/1"}]',
        check=False,
    )


def test_bad_networks_and_exhausted_ranges_are_reported_clearly(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
) -> None:
    apply(apiserver, a_flavor("t.net", vcpus=1, memory=128, disk=1), an_image("test-image"))
    hosts.add("h-gw2", services=("compute", "network"), underlay_ip="192.168.51.1")
    # a bad CIDR never gets in: the CRD refuses it at the door
    bad = apiserver.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(a_network("bad", namespace, cidr="10.1.2.3/24")),
        check=False,
    )
    assert bad.returncode != 0
    assert "spec.cidr has host bits set: use the network address" in bad.stderr
    apply(apiserver, a_network("one", namespace, cidr="10.50.0.0/16"))
    wait_condition(apiserver, "network", namespace, "one", "Ready", "True", "Allocated")
    apply(apiserver, a_network("two", namespace, cidr="10.50.8.0/24"))
    two = wait_condition(apiserver, "network", namespace, "two", "Ready", "False", "CIDROverlap")
    assert (
        "overlaps Network one (10.50.0.0/16) of this project" in condition(two, "Ready")["message"]
    )
    apply(apiserver, a_network("three", namespace, cidr="10.60.0.0/24"))
    apply(apiserver, a_network("four", namespace, cidr="10.70.0.0/24"))
    wait_condition(apiserver, "network", namespace, "three", "Ready", "True", "Allocated")
    four = wait_condition(
        apiserver, "network", namespace, "four", "Ready", "False", "SegmentRangeExhausted"
    )
    assert "(5000-5001) is in use" in condition(four, "Ready")["message"]
    assert "CIDROverlap" in events(apiserver, namespace)
    # an Instance on a missing Network waits for it, then is scheduled
    apply(
        apiserver, an_instance("early", namespace, flavor="t.net", networks=[{"network": "late"}])
    )
    wait_condition(
        apiserver, "instance", namespace, "early", "Scheduled", "False", "NetworkNotFound"
    )
    apply(apiserver, a_network("late", namespace, cidr="10.80.0.0/24", mode="vlan"))
    early = wait_condition(
        apiserver, "instance", namespace, "early", "Scheduled", "True", "Scheduled"
    )
    assert early["status"]["addresses"][0]["ip"] == "10.80.0.2"
    for name in ("one", "two", "three", "four", "late"):
        apiserver.kubectl("delete", "network", name, "-n", namespace, "--wait=false")
    drop_agent_finalizer(apiserver, namespace, "early")
    apiserver.kubectl("delete", "instance", "early", "-n", namespace, "--wait=false")


def floating_of(cluster: ClusterAccess, namespace: str, name: str) -> str | None:
    body = get(cluster, "instance", namespace, name) or {}
    (address,) = (body.get("status") or {}).get("addresses") or [{}]
    return address.get("floatingIP")


def set_floating(cluster: ClusterAccess, namespace: str, name: str, on: bool) -> None:
    patch = [{"op": "add", "path": "/spec/networks/0/floatingIP", "value": on}]
    cluster.kubectl(
        "patch", "instance", name, "-n", namespace, "--type=json", "-p", json.dumps(patch)
    )


def held_floating(inventory_url: str, uid: str) -> tuple[list[str], int]:
    """The Instance's floating IPs in the inventory, and what its quota charge counts."""
    engine = inv.make_engine(inventory_url)
    with engine.connect() as connection:
        addresses = connection.execute(
            select(FloatingIp.address).where(FloatingIp.consumer_uid == uid)
        ).scalars()
        held = sorted(addresses)
    charges = [c.amounts.floating_ips for c in quotas.list_charges(engine) if c.consumer_uid == uid]
    engine.dispose()
    return held, sum(charges)


def test_a_floating_ip_follows_its_nic_on_a_placed_instance(
    apiserver: ClusterAccess,
    network_operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    inventory_url: str,
) -> None:
    apply(apiserver, a_flavor("t.net", vcpus=1, memory=128, disk=1), an_image("test-image"))
    hosts.add("h-fip", services=("compute", "network"), underlay_ip="192.168.52.1")
    apply(apiserver, a_network("lan", namespace, cidr="10.60.0.0/29"))
    apply(apiserver, an_instance("vm", namespace, flavor="t.net", networks=[{"network": "lan"}]))
    body = wait_condition(apiserver, "instance", namespace, "vm", "Scheduled", "True", "Scheduled")
    uid, (address,) = body["metadata"]["uid"], body["status"]["addresses"]
    assert "floatingIP" not in address
    assert held_floating(inventory_url, uid) == ([], 0)

    # associated on the running server: inventory, quota charge, status, Network ports
    set_floating(apiserver, namespace, "vm", True)
    floating = eventually(lambda: floating_of(apiserver, namespace, "vm"), what="associated")
    assert floating == "198.51.100.17"
    assert held_floating(inventory_url, uid) == ([floating], 1)

    def port_mapped() -> bool:
        ports = (get(apiserver, "network", namespace, "lan") or {}).get("status", {}).get("ports")
        return [(p["ip"], p.get("floatingIP")) for p in ports or []] == [(address["ip"], floating)]

    eventually(port_mapped, what="the Network's port carries the floating IP")
    after = get(apiserver, "instance", namespace, "vm") or {}
    assert after["status"]["phase"] == "Scheduled"  # the rest of the hand-over is kept
    assert after["status"]["host"] == "h-fip"
    assert {k: v for k, v in after["status"]["addresses"][0].items() if k != "floatingIP"} == (
        address
    )
    eventually(lambda: "FloatingIPAssociated" in events(apiserver, namespace), what="event")

    # released while the operator is dead (SIGKILL): the restarted one finds the spec and
    # the inventory disagree, and releases address and charge together
    network_operator.kill()
    set_floating(apiserver, namespace, "vm", False)
    network_operator.start()
    eventually(lambda: floating_of(apiserver, namespace, "vm") is None, what="released")
    assert held_floating(inventory_url, uid) == ([], 0)
    eventually(lambda: "FloatingIPReleased" in events(apiserver, namespace), what="event")

    # associated again: the same Instance and NIC get one address, once
    set_floating(apiserver, namespace, "vm", True)
    again = eventually(lambda: floating_of(apiserver, namespace, "vm"), what="associated again")
    assert held_floating(inventory_url, uid) == ([again], 1)
    drop_agent_finalizer(apiserver, namespace, "vm")
    apiserver.kubectl("delete", "instance", "vm", "-n", namespace)
    assert held_floating(inventory_url, uid) == ([], 0)
