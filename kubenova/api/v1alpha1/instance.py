"""Instance: a virtual machine that kubenova schedules onto a host and runs with libvirt."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from .meta import (
    IPV4_PATTERN,
    Condition,
    CRDInfo,
    KubeModel,
    LabelName,
    PrinterColumn,
    Resource,
    ResourceName,
    age_column,
    conditions_field,
    phase_column,
    ready_column,
)


class PowerState(StrEnum):
    RUNNING = "Running"
    STOPPED = "Stopped"


class Evacuation(StrEnum):
    """What happens to an Instance whose host failed and was fenced (out of service)."""

    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


# The administrator's go-ahead for a Manual evacuation: the annotation's value names the
# host to leave (a go-ahead given for one failure does not carry over to the next). Only
# who may update instances/evacuate (cloud administrators) may set it: a policy says so.
EVACUATE_ANNOTATION = "kubenova.io/evacuate-from"


class ResizePolicy(StrEnum):
    """When a change of spec.flavor / spec.resources is accepted."""

    # Only while spec.powerState is Stopped: a running guest is never restarted unasked.
    WHEN_STOPPED = "WhenStopped"
    # Also while it runs: the agent shuts the guest down, resizes it and starts it again.
    RESTART = "Restart"


class InstancePhase(StrEnum):
    PENDING = "Pending"
    SCHEDULED = "Scheduled"
    BUILDING = "Building"
    RUNNING = "Running"
    STOPPED = "Stopped"
    # A new flavor's resources are claimed; the agent has not resized the guest yet.
    RESIZING = "Resizing"
    ERROR = "Error"
    TERMINATING = "Terminating"
    # Deleted while its host is NotReady and not fenced: everything it holds stays held.
    DELETING = "Deleting"


class InstanceResources(KubeModel):
    """Explicit sizing, for an Instance that names no Flavor."""

    vcpus: int = Field(ge=1, le=256, description="Number of virtual CPUs.")
    memory_mib: int = Field(
        alias="memoryMiB", ge=64, le=4194304, description="Guest memory in MiB (at least 64)."
    )
    disk_gib: int = Field(
        alias="diskGiB", ge=1, le=65536, description="Size of the root disk in GiB."
    )


class ClaimedResources(KubeModel):
    """What the Instance's claim holds on its host (status: the operator's to write)."""

    vcpus: int = Field(ge=0, description="Virtual CPUs claimed.")
    memory_mib: int = Field(alias="memoryMiB", ge=0, description="Memory claimed, in MiB.")
    disk_gib: int = Field(alias="diskGiB", ge=0, description="Root disk claimed, in GiB.")


class NetworkAttachment(KubeModel):
    """One NIC of the Instance, on a Network in the same namespace."""

    network: ResourceName = Field(description="Name of a Network in the Instance's namespace.")
    ip: str | None = Field(
        default=None,
        max_length=15,
        pattern=IPV4_PATTERN,
        description="A fixed IPv4 address to request; it must be free and inside the "
        "network's CIDR. Allocated from the network's pool when omitted.",
    )
    floating_ip: bool = Field(
        default=False,
        alias="floatingIP",
        description="Also map a floating IP from the external pool 1:1 to this NIC's address "
        "(shown in status.addresses[].floatingIP). The one field of a NIC that may change "
        "on an existing Instance: true associates a floating IP (counted against the "
        "project's floatingIPs quota), false releases it.",
    )


class VolumeAttachment(KubeModel):
    """A Volume (same namespace) attached to the Instance as an extra disk."""

    volume: ResourceName = Field(description="Name of a Volume in the Instance's namespace.")


class Placement(KubeModel):
    """Where the Instance may run."""

    group: ResourceName | None = Field(
        default=None,
        description="Name of a ServerGroup in the same namespace whose affinity policy applies.",
    )
    host: LabelName | None = Field(
        default=None,
        description="Run on exactly this Host (cloud administrators only: needs create on "
        "instances/forcehost in kubenova.io): skips the weighing, not the capacity checks.",
    )


# The rules between the spec's fields, and what is immutable once created, are not CEL rules
# of this schema but the admission policy charts/kubenova/policies/instance-spec-rules.yaml:
# the apiserver runs every rule of a CRD on every status write too, and the Instance's status
# is written at each placement. (The docstring below is the CRD's public description.)
class InstanceSpec(KubeModel):
    """The desired state of an Instance."""

    flavor: ResourceName | None = Field(
        default=None,
        description="Name of a cluster Flavor giving vcpus, memory and disk; exactly one of "
        "flavor or resources. Changing it resizes the Instance (see resizePolicy); the root "
        "disk never shrinks.",
    )
    resources: InstanceResources | None = Field(
        default=None,
        description="Explicit vcpus/memoryMiB/diskGiB instead of a flavor. Changing them "
        "resizes the Instance (see resizePolicy).",
    )
    resize_policy: ResizePolicy = Field(
        default=ResizePolicy.WHEN_STOPPED,
        description="WhenStopped: spec.flavor / spec.resources may change only while "
        "spec.powerState is Stopped. Restart: also while it runs; the guest is shut down, "
        "resized and started again.",
    )
    image: ResourceName = Field(
        description="Name of the cluster Image the root disk is built from. Immutable.",
    )
    networks: list[NetworkAttachment] = Field(
        default_factory=list,
        max_length=8,
        description="NICs, in order (the first is eth0). Each network gets a fixed IP and MAC "
        "that the Instance keeps until it is deleted. NICs cannot be added, removed, "
        "reordered or readdressed (no NIC hot-plug yet); only floatingIP may change.",
    )
    volumes: list[VolumeAttachment] = Field(
        default_factory=list,
        max_length=16,
        description="Volumes to attach; adding or removing one hot-plugs it on a running guest.",
    )
    user_data: str | None = Field(
        default=None,
        max_length=65536,
        description="cloud-init user-data, delivered through a NoCloud seed.",
    )
    ssh_keys: list[Annotated[str, Field(max_length=16384)]] = Field(
        default_factory=list,
        max_length=16,
        description="SSH public keys for the guest's default user (cloud-init).",
    )
    power_state: PowerState = Field(
        default=PowerState.RUNNING,
        description="Running or Stopped: the agent starts or shuts down the guest to match.",
    )
    restart_requested_at: datetime | None = Field(
        default=None,
        description="Set or change this timestamp to reboot the guest once (GitOps-friendly "
        "reboot request).",
    )
    availability_zone: LabelName | None = Field(
        default=None,
        description="Only schedule onto Hosts of this availability zone. Immutable.",
    )
    placement: Placement | None = Field(
        default=None,
        description="Server group and explicit host. Immutable.",
    )
    evacuation: Evacuation = Field(
        default=Evacuation.AUTOMATIC,
        description="When its host fails and an administrator marks it out of service: "
        "Automatic rebuilds the Instance on another host at once (same fixed IPs, MACs, "
        "floating IPs and volumes; the root disk from its image); Manual waits until an "
        f"administrator sets the annotation {EVACUATE_ANNOTATION}=<failed host>.",
    )


class InstanceAddress(KubeModel):
    network: str = Field(description="The Network this address is on.")
    ip: str = Field(description="The fixed IPv4 address.")
    mac: str = Field(description="The NIC's MAC address.")
    floating_ip: str | None = Field(
        default=None, alias="floatingIP", description="A floating IP mapped 1:1 to ip."
    )


class DomainStatus(KubeModel):
    uuid: str | None = Field(default=None, description="libvirt domain UUID.")
    name: str | None = Field(default=None, description="libvirt domain name.")
    type: str | None = Field(default=None, description="Hypervisor type: kvm or qemu (TCG).")
    vcpus: int | None = Field(default=None, description="vCPUs the domain is defined with.")
    memory_mib: int | None = Field(
        default=None, alias="memoryMiB", description="Memory the domain is defined with, in MiB."
    )


class AttachedVolume(KubeModel):
    volume: str = Field(description="Name of the attached Volume.")
    device: str = Field(
        description="The disk's target name in the libvirt domain, e.g. vdb. The guest's "
        "kernel names virtio disks in the order it finds them, so inside the guest it may differ "
        "(the NoCloud seed comes first); the stable name there is "
        "/dev/disk/by-id/virtio-<the first 20 characters of the Volume's uid>."
    )


class ConsoleStatus(KubeModel):
    log_path: str | None = Field(default=None, description="Serial console log on the host.")
    tail: str | None = Field(
        default=None, max_length=4096, description="The last lines of the serial console."
    )


class InstanceStatus(KubeModel):
    """The observed state of an Instance."""

    phase: InstancePhase | None = Field(
        default=None,
        description="One-word summary of the conditions: Pending, Scheduled, Building, "
        "Running, Stopped, Error, Terminating or Deleting (deleted on a NotReady host that is "
        "not fenced yet: nothing it holds is released).",
    )
    host: str | None = Field(default=None, description="The Host the Instance is placed on.")
    addresses: list[InstanceAddress] = Field(default_factory=list, description="NIC addresses.")
    resources: ClaimedResources | None = Field(
        default=None,
        description="The sizing the operator claimed on the host (written by the operator "
        "only); the agent sizes the guest by it, so a resize takes effect once claimed.",
    )
    domain: DomainStatus | None = Field(default=None, description="The libvirt domain.")
    volumes: list[AttachedVolume] = Field(default_factory=list, description="Attached volumes.")
    console: ConsoleStatus | None = Field(default=None, description="Serial console.")
    restarted_at: datetime | None = Field(
        default=None, description="The spec.restartRequestedAt last acted on."
    )
    observed_generation: int | None = Field(
        default=None, description="The metadata.generation last reconciled."
    )
    conditions: list[Condition] = conditions_field()


class Instance(Resource):
    """A virtual machine."""

    crd = CRDInfo(
        kind="Instance",
        plural="instances",
        singular="instance",
        short_names=("inst",),
        namespaced=True,
        description="An Instance is a virtual machine: a flavor (or explicit resources), an "
        "image, networks and volumes. kubenova schedules it onto a Host and the host's agent "
        "runs it as a libvirt domain.",
        printer_columns=(
            phase_column(),
            PrinterColumn(name="Host", type="string", json_path=".status.host"),
            PrinterColumn(name="IP", type="string", json_path=".status.addresses[0].ip"),
            ready_column(),
            age_column(),
            PrinterColumn(name="Flavor", type="string", json_path=".spec.flavor", priority=1),
            PrinterColumn(name="Image", type="string", json_path=".spec.image", priority=1),
            PrinterColumn(
                name="Floating-IP",
                type="string",
                json_path=".status.addresses[0].floatingIP",
                priority=1,
            ),
        ),
        selectable_fields=(".status.host",),
    )

    spec: InstanceSpec
    status: InstanceStatus | None = None
