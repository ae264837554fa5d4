"""Host: one bare-metal node running the kubenova agent (cluster-scoped)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from .meta import (
    Condition,
    CRDInfo,
    KubeModel,
    LabelName,
    PrinterColumn,
    Resource,
    age_column,
    conditions_field,
    ready_column,
)
from .migration import MigrationEndpoint


class HostService(StrEnum):
    COMPUTE = "compute"
    VOLUME = "volume"
    NETWORK = "network"


class Overcommit(KubeModel):
    """Allocation ratios: how much of each resource may be promised per physical unit."""

    cpu: float = Field(default=16.0, ge=1.0, le=64.0, description="vCPUs per physical CPU.")
    memory: float = Field(default=1.5, ge=1.0, le=4.0, description="Guest RAM per host RAM.")
    disk: float = Field(default=1.0, ge=1.0, le=4.0, description="Disk per host disk.")


class HostSpec(KubeModel):
    """How a Host is offered to the scheduler."""

    model_config = {
        "json_schema_extra": {
            "x-kubernetes-validations": [
                {
                    "rule": "!self.drain || !self.schedulable",
                    "message": "spec.drain needs spec.schedulable: false (cordon the host in "
                    "the same apply): a drained host must take no new guests",
                }
            ]
        }
    }

    availability_zone: LabelName = Field(
        default="nova", description="Availability zone of the host."
    )
    services: list[HostService] = Field(
        default_factory=lambda: [HostService.COMPUTE],
        max_length=3,
        description="Services the host's agent runs: compute, volume, network.",
        json_schema_extra={"x-kubernetes-list-type": "set", "default": ["compute"]},
    )
    overcommit: Overcommit = Field(
        default_factory=Overcommit,
        description="Allocation ratios for the scheduler.",
        json_schema_extra={"default": {}},
    )
    schedulable: bool = Field(
        default=True, description="False cordons the host: no new placements."
    )
    out_of_service: bool = Field(
        default=False,
        alias="outOfService",
        description="An administrator's word that the host is fenced (powered off or cut "
        "off from its guests' networks and storage), like Kubernetes' "
        "node.kubernetes.io/out-of-service taint: the Instances and Volumes of a NotReady "
        "host are released only once it is set (or its agent comes back). It also cordons "
        "the host.",
    )

    drain: bool = Field(
        default=False,
        description="An administrator's request to move every guest off the host (with "
        "schedulable: false): the operator creates one InstanceMigration per Instance on it "
        "(live for a running one, cold for a stopped one), and status.drain shows the "
        "progress.",
    )


class DrainPhase(StrEnum):
    DRAINING = "Draining"
    DRAINED = "Drained"


class DrainStatus(KubeModel):
    """Progress of a drain (spec.drain), written by the operator."""

    phase: DrainPhase = Field(description="Draining, or Drained once no guest is left.")
    instances: int = Field(ge=0, description="Instances still placed on the host.")
    migrating: int = Field(ge=0, description="Of those, running, with a live migration under way.")
    failed: int = Field(
        ge=0,
        description="Of those, whose drain migration failed (delete it to try again).",
    )
    stopped: int = Field(
        ge=0,
        description="Of those, stopped, with a cold migration under way (their disks move "
        "to another host; they stay stopped there).",
    )
    message: str = Field(default="", max_length=1024, description="A summary for humans.")


class HostResources(KubeModel):
    vcpus: int = Field(default=0, ge=0, description="Virtual CPUs.")
    memory_mib: int = Field(default=0, ge=0, alias="memoryMiB", description="Memory in MiB.")
    disk_gib: int = Field(default=0, ge=0, alias="diskGiB", description="Disk in GiB.")


class HostStatus(KubeModel):
    """What the agent and the operator observe about the host."""

    capacity: HostResources | None = Field(default=None, description="Physical capacity.")
    allocated: HostResources | None = Field(
        default=None,
        description="Claimed by placements, as the operator's inventory records it (updated "
        "at most every 10 s; shown by kubectl get hosts -o wide).",
    )
    domain_type: str | None = Field(
        default=None, description="Hypervisor domain type the host runs: kvm or qemu (TCG)."
    )
    underlay_ip: str | None = Field(
        default=None, alias="underlayIP", description="Address for VXLAN and storage traffic."
    )
    storage_mac: str | None = Field(
        default=None,
        alias="storageMAC",
        description="MAC of the interface carrying storage traffic (ATA over Ethernet ACLs).",
    )
    agent_version: str | None = Field(default=None, description="kubenova-agent version.")
    migration: MigrationEndpoint | None = Field(
        default=None,
        description="How a peer reaches this host for a live migration (set by its agent).",
    )
    drain: DrainStatus | None = Field(
        default=None, description="Progress of the drain spec.drain asks for (the operator's)."
    )
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = conditions_field()


def _wide(name: str, json_path: str, description: str) -> PrinterColumn:
    """An integer column shown by `kubectl get hosts -o wide`."""
    return PrinterColumn(name, "integer", json_path, description, priority=1)


class Host(Resource):
    """A node running the kubenova agent."""

    crd = CRDInfo(
        kind="Host",
        plural="hosts",
        singular="host",
        short_names=("hst",),
        namespaced=False,
        description="A Host is a bare-metal node whose agent runs Instances, Volumes and "
        "Networks. Its agent heart-beats through a Lease in kubenova-system.",
        printer_columns=(
            PrinterColumn(name="Zone", type="string", json_path=".spec.availabilityZone"),
            PrinterColumn(name="Schedulable", type="boolean", json_path=".spec.schedulable"),
            PrinterColumn(
                name="OutOfService",
                type="boolean",
                json_path=".spec.outOfService",
                priority=1,
            ),
            PrinterColumn(name="VCPUs", type="integer", json_path=".status.capacity.vcpus"),
            _wide("AllocVCPUs", ".status.allocated.vcpus", "vCPUs claimed by placements"),
            PrinterColumn(name="Memory", type="integer", json_path=".status.capacity.memoryMiB"),
            _wide("AllocMemory", ".status.allocated.memoryMiB", "MiB claimed by placements"),
            _wide("Disk", ".status.capacity.diskGiB", "Disk in GiB"),
            _wide("AllocDisk", ".status.allocated.diskGiB", "GiB claimed by placements"),
            ready_column(),
            age_column(),
        ),
    )

    spec: HostSpec
    status: HostStatus | None = None
