"""Networks in the operator: IPAM, segment ids, floating IPs and gateway hosts, in the inventory.

Everything here is a blocking function on the inventory engine (call it from a thread)
or a pure function, except `reconciler` (the Network reconciler) and `registration` (its
kopf handlers).

- `records`: parse a Network body into a `NetworkRecord` (CIDR, gateway, mode);
- `registry`: a Network's inventory row, with the per-project CIDR overlap check;
- `segments`: VLAN ids / VNIs from the configured ranges;
- `ports`: fixed IPs and MACs per (network, instance), requested or allocated;
- `floating`: the external pool, 1:1 addresses per NIC;
- `association`: a placed Instance's floating IPs follow its NICs' floatingIP (toggled);
- `gateways`: which network host runs a network's DHCP, router and floating IPs;
- `status`: the Network status and host labels computed from all of the above.
"""

from kubenova.operator.networks.settings import NetworkSettings, from_environment

__all__ = ["NetworkSettings", "from_environment"]
