"""Live migration with NICs (pure parts): a moving guest's networks are wired on its
target during the move, and the target waits for its bridges before it says it is ready."""

from __future__ import annotations

from pathlib import Path

from kubenova.agents.compute.migration import bridges_missing
from kubenova.agents.compute.spec import DomainSpec, Nic, RootDisk
from kubenova.operator.networks import status as st
from kubenova.operator.networks.ports import PortView
from kubenova.operator.networks.records import network_record

NETWORK = {
    "metadata": {"uid": "u-1", "namespace": "t", "name": "lan", "generation": 1},
    "spec": {"mode": "vxlan", "cidr": "10.1.0.0/24"},
}


def observation(incoming: dict[str, set[str]] | None) -> st.Observation:
    ports = [
        PortView("uid-2", "mover", "h1", "10.1.0.2", "52:54:00:00:00:02", "198.51.100.9"),
        PortView("uid-3", "stays", "h2", "10.1.0.3", "52:54:00:00:00:03", None),
    ]
    underlay = {h: f"192.168.0.{i}" for i, h in enumerate(("gw", "h1", "h2", "h3"), 1)}
    return st.Observation(
        network_record(NETWORK), 1, segment_id=9, gateway_host="gw", ports=ports,
        underlay=underlay, incoming=incoming,
    )  # fmt: skip


def test_a_moving_guests_network_is_wired_on_its_target_too() -> None:
    before = st.desired_status(observation(None), None)
    assert before["hosts"] == ["gw", "h1", "h2"]
    moving = st.desired_status(observation({"mover": {"h3"}, "elsewhere": {"h9"}}), None)
    # The target carries the bridge and is a VXLAN peer of every other host before the
    # switch; a migration of an instance without a NIC here wires nothing.
    assert moving["hosts"] == ["gw", "h1", "h2", "h3"]
    assert [e["host"] for e in moving["tunnelEndpoints"]] == ["gw", "h1", "h2", "h3"]
    # DHCP host entries and floating IPs name the fixed IP, not the compute host.
    assert moving["ports"] == before["ports"]
    assert moving["gatewayHost"] == before["gatewayHost"] == "gw"
    assert st.label_changes({"wired.kubenova.io/h1": "true"}, moving["hosts"]) == {
        "wired.kubenova.io/gw": "true",
        "wired.kubenova.io/h2": "true",
        "wired.kubenova.io/h3": "true",
    }


def test_the_target_waits_for_the_bridges_of_the_guests_nics(tmp_path: Path) -> None:
    spec = DomainSpec(
        uid="u1", namespace="t", name="vm", vcpus=1, memory_mib=128,
        root_disk=RootDisk(Path("/var/cache/images/base.qcow2")),
        nics=(Nic("knb-aaaa", "52:54:00:00:00:01", "tap1"),
              Nic("knb-bbbb", "52:54:00:00:00:02", "tap2")),
    )  # fmt: skip
    (tmp_path / "knb-aaaa").mkdir()
    assert bridges_missing(spec, tmp_path) == ["knb-bbbb"]
    (tmp_path / "knb-bbbb").mkdir()
    assert bridges_missing(spec, tmp_path) == []
    without = DomainSpec(uid="u2", namespace="t", name="w", vcpus=1, memory_mib=128,
                         root_disk=spec.root_disk)  # fmt: skip
    assert bridges_missing(without, tmp_path) == []
