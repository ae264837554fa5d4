"""The network driver contract: one suite, run on the fake (unit) and the real driver
(tests/integration/network/test_driver_contract.py, in a network namespace)."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import pytest

from kubenova.agents.network.driver import NetworkDriver
from kubenova.agents.network.spec import GatewaySpec, HostNetwork, Mode
from kubenova.errors import UserError

BRIDGE, OTHER = "knb-c0ffee01", "knb-c0ffee02"
LOCAL = "192.168.90.1"

MakeDriver = Callable[[], NetworkDriver]


def vxlan(vni: int = 42, peers: tuple[str, ...] = (), gateway: bool = False) -> HostNetwork:
    spec = None
    if gateway:
        spec = GatewaySpec(
            cidr=ipaddress.IPv4Network("10.9.0.0/24"), gateway=ipaddress.IPv4Address("10.9.0.1")
        )
    return HostNetwork("t/c", BRIDGE, Mode.VXLAN, vni, local_ip=LOCAL, peers=peers, gateway=spec)


class DriverContract:
    """Subclass with a `make_driver` fixture returning a fresh driver."""

    def test_plug_makes_the_bridge_and_its_segment(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(vxlan(peers=("192.168.90.2",)))
        state = driver.describe(BRIDGE)
        assert state is not None
        assert (state.segment, state.segment_id) == ("vxlan", 42)
        assert state.peers == {"192.168.90.2"}
        assert driver.bridges() == {BRIDGE}

    def test_plug_twice_changes_nothing(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(vxlan(peers=("192.168.90.2",)))
        first = driver.describe(BRIDGE)
        driver.plug(vxlan(peers=("192.168.90.2",)))
        assert driver.describe(BRIDGE) == first

    def test_peers_and_segment_follow_the_spec(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(vxlan(peers=("192.168.90.2", "192.168.90.3")))
        driver.plug(vxlan(vni=43, peers=("192.168.90.3",)))
        state = driver.describe(BRIDGE)
        assert state is not None
        assert (state.segment_id, state.peers) == (43, {"192.168.90.3"})

    def test_the_gateway_host_holds_the_gateway_address(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(vxlan(gateway=True))
        state = driver.describe(BRIDGE)
        assert state is not None
        assert "10.9.0.1/24" in state.addresses
        driver.plug(vxlan(gateway=False))
        state = driver.describe(BRIDGE)
        assert state is not None
        assert not {a for a in state.addresses if a.startswith("10.")}

    def test_unplug_removes_everything_and_is_idempotent(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(vxlan())
        driver.unplug(BRIDGE)
        driver.unplug(BRIDGE)
        driver.unplug(OTHER)  # never plugged
        assert driver.describe(BRIDGE) is None
        assert driver.bridges() == set()

    def test_a_flat_network_needs_an_interface_of_its_own(self, make_driver: MakeDriver) -> None:
        driver = make_driver()
        driver.plug(HostNetwork("t/f", BRIDGE, Mode.FLAT, trunk="trunk0"))
        state = driver.describe(BRIDGE)
        assert state is not None
        assert state.segment == "flat"
        with pytest.raises(UserError, match="already belongs to another bridge"):
            driver.plug(HostNetwork("t/g", OTHER, Mode.FLAT, trunk="trunk0"))
        with pytest.raises(UserError, match="does not exist on this host"):
            driver.plug(HostNetwork("t/g", OTHER, Mode.FLAT, trunk="nope0"))
        driver.unplug(BRIDGE)
        driver.unplug(OTHER)

    def test_interface_addresses_of_an_unaddressed_and_a_missing_interface(
        self, make_driver: MakeDriver
    ) -> None:
        driver = make_driver()
        assert driver.interface_addresses("trunk0") == frozenset()  # link-local IPv6 left out
        assert driver.interface_addresses("nope0") is None
