"""The host interfaces this agent lets a network use: its own allow-list, whatever the API says.

A flat network bridges a host interface itself and a VLAN network hangs a tagged uplink
off it (an 802.1Q sub-interface, or an Open vSwitch port that takes the interface over).
Which interface comes from the Network (`spec.physicalInterface`, admin-only at the API)
or the agent's `--physical-interface`; either way it is used only when it is on the
agent's `--provider-interfaces` list (empty by default: no flat or VLAN networks) and
carries no IP address, so no policy mistake upstream can take a host's management NIC.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubenova.agents.network.spec import HostNetwork, Mode
from kubenova.errors import UserError

AddressesOf = Callable[[str], frozenset[str] | None]
PROVIDER_MODES = (Mode.FLAT, Mode.VLAN)


class InterfaceNotAllowed(UserError):
    reason = "InterfaceNotAllowed"


class InterfaceHasAddress(UserError):
    reason = "InterfaceHasAddress"


@dataclass(frozen=True)
class ProviderInterfaces:
    """The allow-list (`--provider-interfaces`)."""

    allowed: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, names: Iterable[str]) -> ProviderInterfaces:
        """From repeated or comma-separated flag values; blanks ignored."""
        return cls(frozenset(n.strip() for v in names for n in v.split(",") if n.strip()))

    def check(self, net: HostNetwork, addresses_of: AddressesOf) -> None:
        """Refuse `net` if its trunk is not ours to give or carries an address."""
        if net.mode not in PROVIDER_MODES or not net.trunk:
            return
        if net.trunk not in self.allowed:
            listed = ", ".join(sorted(self.allowed)) or "none"
            raise InterfaceNotAllowed(
                f"{net.key}: interface {net.trunk} is not one this host's agent may give to "
                f"networks (--provider-interfaces: {listed})"
            )
        addresses = addresses_of(net.trunk)
        if addresses:
            raise InterfaceHasAddress(
                f"{net.key}: interface {net.trunk} carries {', '.join(sorted(addresses))}; "
                "an interface with an IP address is never put into a network (it may be the "
                "host's own link): remove the address or use another interface"
            )
