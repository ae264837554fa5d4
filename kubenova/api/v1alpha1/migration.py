"""InstanceMigration: move an Instance to another Host, live (KubeVirt's
VirtualMachineInstanceMigration) or cold (Nova's `migrate`: the guest is stopped and its
disk copied). Created by cloud administrators, and by the operator itself for a drain or a
resize its host has no room for: project roles never grant `instancemigrations`."""

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


class MigrationMode(StrEnum):
    LIVE = "Live"
    COLD = "Cold"


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
        description="Name of an Instance in the same namespace (running, for a live move).",
        json_schema_extra=immutable("spec.instanceName"),
    )
    target_host: LabelName | None = Field(
        default=None,
        description="Move to exactly this Host (capacity and anti-affinity still checked); "
        "the scheduler picks one, never the source, when omitted.",
        json_schema_extra=immutable("spec.targetHost"),
    )
    mode: MigrationMode = Field(
        default=MigrationMode.LIVE,
        description="Live: the running guest moves while it runs (memory and disk copied "
        "by libvirt). Cold: the guest is stopped and held on its source (condition "
        "SourceHeld; a start asked meanwhile waits for the move's end), then the target "
        "pulls its disk (the qcow2 overlay) and seed, and it is started there if its "
        "spec.powerState says Running. A cold move of a resize claims the Instance's new "
        "size on the target (the operator creates those, named resize-<uid>-<generation>).",
        json_schema_extra=immutable("spec.mode"),
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
        "remaining / total), Completed or Failed (the guest stays on the source).",
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
    """A request to move one Instance, live or cold."""

    crd = CRDInfo(
        kind="InstanceMigration",
        plural="instancemigrations",
        singular="instancemigration",
        short_names=("imig",),
        namespaced=True,
        description="An InstanceMigration moves an Instance to another Host (picked by the "
        "scheduler or named in spec.targetHost): live while it runs, or cold (spec.mode). "
        "Cloud administrators only; the operator makes some for drains and resizes.",
        printer_columns=(
            phase_column(),
            PrinterColumn(name="Instance", type="string", json_path=".spec.instanceName"),
            PrinterColumn(name="Mode", type="string", json_path=".spec.mode"),
            PrinterColumn(name="Source", type="string", json_path=".status.sourceHost"),
            PrinterColumn(name="Target", type="string", json_path=".status.targetHost"),
            age_column(),
        ),
        selectable_fields=(".status.sourceHost", ".status.targetHost"),
    )

    spec: InstanceMigrationSpec
    status: InstanceMigrationStatus | None = None
