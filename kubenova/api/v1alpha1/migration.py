"""InstanceMigration: move a running Instance to another Host, live (KubeVirt's
VirtualMachineInstanceMigration). Created by cloud administrators only: project roles never
grant `instancemigrations`."""

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
    ResourceName,
    age_column,
    conditions_field,
    immutable,
    phase_column,
)


class MigrationPhase(StrEnum):
    PENDING = "Pending"
    SCHEDULING = "Scheduling"
    PREPARING_TARGET = "PreparingTarget"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"


class MigrationEndpoint(KubeModel):
    """How another host's libvirtd reaches this host's for a live migration. Written by
    this host's agent in its Host status (a Host's status is no tenant's to write)."""

    libvirt_uri: str = Field(
        alias="libvirtURI",
        max_length=1024,
        description="The libvirt URI a peer libvirtd connects to (peer-to-peer migration).",
    )
    address: str = Field(
        max_length=253, description="The address QEMU listens on for an incoming guest."
    )
    instances_dir: str = Field(
        max_length=4096, description="Where this host keeps its instances' files."
    )


class InstanceMigrationSpec(KubeModel):
    """Which Instance to move, and optionally where. The whole spec is immutable: a
    migration is one attempt; delete it to cancel (the guest stays on its source)."""

    instance_name: ResourceName = Field(
        description="Name of a running Instance in the same namespace.",
        json_schema_extra=immutable("spec.instanceName"),
    )
    target_host: LabelName | None = Field(
        default=None,
        description="Move to exactly this Host (capacity and anti-affinity still checked); "
        "the scheduler picks one, never the source, when omitted.",
        json_schema_extra=immutable("spec.targetHost"),
    )


class MigrationProgress(KubeModel):
    """What the source agent read from libvirt's job statistics."""

    data_total: int | None = Field(default=None, ge=0, description="Bytes to transfer.")
    data_remaining: int | None = Field(default=None, ge=0, description="Bytes still to send.")
    memory_iteration: int | None = Field(
        default=None, ge=0, description="Pre-copy pass over guest memory."
    )


class InstanceMigrationStatus(KubeModel):
    """Written by the operator (phase, hosts, conditions) and by the agents (progress)."""

    phase: MigrationPhase | None = Field(
        default=None,
        description="Pending, Scheduling, PreparingTarget, Running (progress shows data "
        "remaining / total), Completed or Failed (the guest runs on on the source).",
    )
    source_host: str | None = Field(default=None, description="The Host the guest leaves.")
    target_host: str | None = Field(
        default=None,
        description="The Host claimed for the guest (both hosts hold its resources until "
        "it runs there). Written by the operator only; the agents select by it.",
    )
    progress: MigrationProgress | None = Field(default=None, description="Transfer progress.")
    conditions: list[Condition] = conditions_field()


class InstanceMigration(Resource):
    """A request to live-migrate one Instance."""

    crd = CRDInfo(
        kind="InstanceMigration",
        plural="instancemigrations",
        singular="instancemigration",
        short_names=("imig",),
        namespaced=True,
        description="An InstanceMigration live-migrates a running Instance to another Host "
        "(picked by the scheduler or named in spec.targetHost). Cloud administrators only.",
        printer_columns=(
            phase_column(),
            PrinterColumn(name="Instance", type="string", json_path=".spec.instanceName"),
            PrinterColumn(name="Source", type="string", json_path=".status.sourceHost"),
            PrinterColumn(name="Target", type="string", json_path=".status.targetHost"),
            age_column(),
        ),
        selectable_fields=(".status.sourceHost", ".status.targetHost"),
    )

    spec: InstanceMigrationSpec
    status: InstanceMigrationStatus | None = None
