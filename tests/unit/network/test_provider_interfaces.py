"""The agent's allow-list of provider interfaces, decided on plain values."""

from __future__ import annotations

import pytest

from kubenova.agents.network.fake import FakeNetworkDriver
from kubenova.agents.network.provider import (
    InterfaceHasAddress,
    InterfaceNotAllowed,
    ProviderInterfaces,
)
from kubenova.agents.network.spec import HostNetwork, Mode

HOST = FakeNetworkDriver(
    frozenset({"eth0", "trunk0", "trunk1"}), addresses={"eth0": frozenset({"192.0.2.5/24"})}
)


def net(mode: Mode, trunk: str | None) -> HostNetwork:
    return HostNetwork("p/n", "knb-0000aaaa", mode, None if mode == Mode.FLAT else 7, trunk=trunk,
                       local_ip="192.0.2.5")  # fmt: skip


def test_the_flag_takes_repeated_and_comma_separated_names() -> None:
    parsed = ProviderInterfaces.parse(["trunk0, trunk1", "", "eth2"])
    assert parsed.allowed == {"trunk0", "trunk1", "eth2"}
    assert ProviderInterfaces.parse([]).allowed == frozenset()


@pytest.mark.parametrize("mode", [Mode.FLAT, Mode.VLAN])
def test_nothing_is_allowed_by_default(mode: Mode) -> None:
    with pytest.raises(InterfaceNotAllowed, match=r"trunk0 .*--provider-interfaces: none"):
        ProviderInterfaces().check(net(mode, "trunk0"), HOST.interface_addresses)


def test_a_listed_unaddressed_interface_is_allowed() -> None:
    ProviderInterfaces(frozenset({"trunk0"})).check(
        net(Mode.FLAT, "trunk0"), HOST.interface_addresses
    )


def test_an_addressed_interface_is_refused_even_when_listed() -> None:
    allowed = ProviderInterfaces(frozenset({"eth0"}))
    with pytest.raises(InterfaceHasAddress, match=r"eth0 carries 192\.0\.2\.5/24"):
        allowed.check(net(Mode.VLAN, "eth0"), HOST.interface_addresses)


def test_an_unlisted_interface_is_refused_before_it_is_looked_at() -> None:
    looked_at: list[str] = []

    def addresses_of(name: str) -> frozenset[str] | None:
        looked_at.append(name)
        return frozenset()

    with pytest.raises(InterfaceNotAllowed, match="trunk1"):
        ProviderInterfaces(frozenset({"trunk0"})).check(net(Mode.FLAT, "trunk1"), addresses_of)
    assert looked_at == []


def test_vxlan_networks_use_no_host_interface() -> None:
    ProviderInterfaces().check(net(Mode.VXLAN, None), HOST.interface_addresses)
