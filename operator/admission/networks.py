"""Admission checks of a Network that its schema cannot make: no overlap within its project.

The inventory refuses a CIDR that overlaps another Network of the same namespace when the
operator registers it (`networks.registry`, which stays the authority under races); refused
here, `kubectl apply` names spec.cidr instead of the Network turning Ready=False
CIDROverlap afterwards. Networks already being deleted are not counted.
"""

from __future__ import annotations

import ipaddress

from kubenova.kube.meta import Body, deleting, name_of, namespace_of
from kubenova.operator.admission.errors import AdmissionRefused
from kubenova.operator.admission.references import References


async def check_network(body: Body, old: Body | None, refs: References) -> None:
    """Refuse a new Network whose spec.cidr overlaps another Network of its namespace."""
    if old is not None:
        return  # spec.cidr is immutable (CRD rule)
    cidr = ipaddress.IPv4Network((body.get("spec") or {})["cidr"])  # valid: the CRD checked
    for other in await refs.networks(namespace_of(body)):
        if name_of(other) == name_of(body) or deleting(other):
            continue
        other_cidr = ipaddress.IPv4Network((other.get("spec") or {}).get("cidr", ""), strict=False)
        if cidr.overlaps(other_cidr):
            raise AdmissionRefused(
                "spec.cidr",
                f"{cidr} overlaps Network {name_of(other)} ({other_cidr}) of this project: "
                "choose a CIDR that overlaps no other Network in the namespace "
                f"(kubectl get networks -n {namespace_of(body)})",
            )
