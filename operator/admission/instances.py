"""Admission checks of an Instance: references in reach, sizing that fits its image, quota."""

from __future__ import annotations

import ipaddress

from kubenova.kube.meta import Body, deleting, namespace_of
from kubenova.operator.admission.errors import AdmissionRefused
from kubenova.operator.admission.references import References
from kubenova.operator.inventory.quotas import QuotaAmounts
from kubenova.operator.resources import Resources


async def check_instance(
    body: Body, old: Body | None, refs: References, *, floating_ips: bool = True
) -> QuotaAmounts | None:
    """Refuse (AdmissionRefused) or return what a new Instance charges its project's quota.

    On an update only what the update adds is checked (a new network or volume, a floating
    IP turned on, a new sizing: a resize). A resize is checked like a creation and returns
    the new charge; a floating IP turned on returns the new floating IP total; otherwise an
    update charges nothing more (None). The quota check counts the Instance's old charge
    out. `floating_ips`: whether the operator has a floating IP pool at all.
    """
    namespace = namespace_of(body)
    spec = body.get("spec") or {}
    old_spec = (old or {}).get("spec") or {}
    await _check_networks(namespace, spec, old_spec, refs, floating_ips)
    await _check_volumes(namespace, spec, old_spec, refs)
    if old is not None:
        if (resized := await _check_resize(spec, old_spec, refs)) is not None:
            return resized  # its total counts the floating IPs too
        # A floating IP associated with an existing Instance: its new total must fit.
        more = _floating_ips(spec) > _floating_ips(old_spec)
        return QuotaAmounts(floating_ips=_floating_ips(spec)) if more else None
    resources = await _sizing(spec, refs)
    await _check_image(spec, resources, refs)
    await _check_placement(namespace, spec, refs)
    return QuotaAmounts.for_instance(resources, _floating_ips(spec))


async def instance_amounts(spec: Body, refs: References) -> QuotaAmounts:
    """What an Instance already admitted will charge its project's quota once claimed.

    Its Flavor may be gone since: then only the Instance and its floating IPs count.
    """
    try:
        resources = await _sizing(spec, refs)
    except AdmissionRefused:
        return QuotaAmounts(instances=1, floating_ips=_floating_ips(spec))
    return QuotaAmounts.for_instance(resources, _floating_ips(spec))


async def _check_resize(spec: Body, old_spec: Body, refs: References) -> QuotaAmounts | None:
    """A new flavor must exist and fit the image, and the root disk never shrinks (the
    guest's filesystem fills it: a smaller overlay would cut it off)."""
    field = "spec.flavor" if spec.get("flavor") else "spec.resources"
    if spec.get("flavor") == old_spec.get("flavor") and spec.get("resources") == old_spec.get(
        "resources"
    ):
        return None
    resources = await _sizing(spec, refs)
    await _check_image(spec, resources, refs)
    try:
        before = await _sizing(old_spec, refs)
    except AdmissionRefused:
        before = None  # the old Flavor is gone: its disk size is the claim's, checked there
    if before is not None and resources.disk_gb < before.disk_gb:
        raise AdmissionRefused(
            field,
            f"a resize cannot shrink the root disk: {field} gives {resources.disk_gb} GiB, "
            f"the Instance has {before.disk_gb} GiB",
        )
    return QuotaAmounts.for_instance(resources, _floating_ips(spec))


def _floating_ips(spec: Body) -> int:
    return sum(1 for nic in spec.get("networks") or () if nic.get("floatingIP"))


async def _sizing(spec: Body, refs: References) -> Resources:
    if spec.get("flavor"):
        flavor = await refs.flavor(spec["flavor"])
        if flavor is None:
            raise AdmissionRefused(
                "spec.flavor",
                f"Flavor {spec['flavor']} does not exist (kubectl get flavors shows what there is)",
            )
        fspec = flavor["spec"]
        return Resources(fspec["vcpus"], fspec["memoryMiB"], fspec["diskGiB"])
    sizing = spec["resources"]  # the schema requires one of flavor / resources
    return Resources(sizing["vcpus"], sizing["memoryMiB"], sizing["diskGiB"])


async def _check_image(spec: Body, resources: Resources, refs: References) -> None:
    image = await refs.image(spec["image"])
    if image is None:
        raise AdmissionRefused(
            "spec.image",
            f"Image {spec['image']} does not exist (kubectl get images shows what there is)",
        )
    ispec = image["spec"]
    sizing = "spec.flavor" if spec.get("flavor") else "spec.resources"
    min_disk, min_memory = ispec.get("minDiskGiB", 1), ispec.get("minMemoryMiB", 64)
    if resources.disk_gb < min_disk:
        raise AdmissionRefused(
            sizing if spec.get("flavor") else "spec.resources.diskGiB",
            f"image {spec['image']} needs a root disk of at least {min_disk} GiB, "
            f"{sizing} gives {resources.disk_gb} GiB",
        )
    if resources.memory_mb < min_memory:
        raise AdmissionRefused(
            sizing if spec.get("flavor") else "spec.resources.memoryMiB",
            f"image {spec['image']} needs at least {min_memory} MiB of memory, "
            f"{sizing} gives {resources.memory_mb} MiB",
        )


async def _check_networks(
    namespace: str, spec: Body, old_spec: Body, refs: References, floating_ips: bool
) -> None:
    before = {
        (a["network"], a.get("ip")): bool(a.get("floatingIP"))
        for a in old_spec.get("networks") or []
    }
    for index, attachment in enumerate(spec.get("networks") or []):
        name, ip = attachment["network"], attachment.get("ip")
        field = f"spec.networks[{index}]"
        if attachment.get("floatingIP") and not before.get((name, ip)) and not floating_ips:
            raise AdmissionRefused(
                f"{field}.floatingIP",
                "floating IPs are not configured in this cloud (no KUBENOVA_FLOATING_IP_POOL): "
                "set it to false or ask an administrator for a pool",
            )
        if (name, ip) in before:
            continue
        network = await refs.network(namespace, name)
        if network is None:
            raise AdmissionRefused(
                f"{field}.network",
                f"Network {name} does not exist in namespace {namespace}; an Instance can only "
                f"use the Networks of its own namespace (kubectl get networks -n {namespace})",
            )
        if deleting(network):
            raise AdmissionRefused(
                f"{field}.network", f"Network {name} is being deleted: attach another network"
            )
        if ip:
            _check_fixed_ip(f"{field}.ip", ip, name, network["spec"])


def _check_fixed_ip(field: str, ip: str, network_name: str, network_spec: Body) -> None:
    subnet = ipaddress.ip_network(network_spec["cidr"], strict=False)
    address = ipaddress.ip_address(ip)
    if address not in subnet:
        raise AdmissionRefused(field, f"{ip} is outside network {network_name} ({subnet})")
    if address in (subnet.network_address, subnet.broadcast_address):
        raise AdmissionRefused(
            field, f"{ip} is the network or broadcast address of {network_name} ({subnet})"
        )
    if network_spec.get("gateway") == ip:
        raise AdmissionRefused(field, f"{ip} is the gateway of network {network_name}")


async def _check_volumes(namespace: str, spec: Body, old_spec: Body, refs: References) -> None:
    before = {a["volume"] for a in old_spec.get("volumes") or []}
    for index, attachment in enumerate(spec.get("volumes") or []):
        name = attachment["volume"]
        if name in before:
            continue
        volume = await refs.volume(namespace, name)
        if volume is None:
            raise AdmissionRefused(
                f"spec.volumes[{index}].volume",
                f"Volume {name} does not exist in namespace {namespace}; an Instance can only "
                f"attach the Volumes of its own namespace (kubectl get volumes -n {namespace})",
            )
        if deleting(volume):
            raise AdmissionRefused(
                f"spec.volumes[{index}].volume", f"Volume {name} is being deleted: attach another"
            )


async def _check_placement(namespace: str, spec: Body, refs: References) -> None:
    placement = spec.get("placement") or {}
    group, host = placement.get("group"), placement.get("host")
    if group and await refs.server_group(namespace, group) is None:
        raise AdmissionRefused(
            "spec.placement.group",
            f"ServerGroup {group} does not exist in namespace {namespace} "
            f"(kubectl get servergroups -n {namespace})",
        )
    if host and await refs.host(host) is None:
        raise AdmissionRefused(
            "spec.placement.host", f"Host {host} does not exist (kubectl get hosts)"
        )
