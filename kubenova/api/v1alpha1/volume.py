"""Volume: an attachable block device exported over iSCSI (tgt) or ATA over Ethernet (vblade)."""

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
    ready_column,
)


class VolumeProtocol(StrEnum):
    ISCSI = "iscsi"
    AOE = "aoe"


class VolumePhase(StrEnum):
    PENDING = "Pending"
    CREATING = "Creating"
    AVAILABLE = "Available"
    ATTACHING = "Attaching"
    IN_USE = "InUse"
    DETACHING = "Detaching"
    DELETING = "Deleting"
    ERROR = "Error"


class VolumeSpec(KubeModel):
    """The desired state of a Volume."""

    size_gib: int = Field(
        alias="sizeGiB",
        ge=1,
        le=65536,
        description="Size in GiB, charged to the project's volumeGiB quota. Immutable: "
        "the backing file and the exported LUN keep the size they were made with.",
        json_schema_extra={
            # Growing would have to grow the claim, the backing file and the live LUN
            # together; until that exists, a change is refused rather than ignored.
            "x-kubernetes-validations": [
                {
                    "rule": "self == oldSelf",
                    "message": "spec.sizeGiB is immutable once created: a Volume cannot be "
                    "resized; create a new Volume of the size you need and copy the data",
                }
            ]
        },
    )
    protocol: VolumeProtocol = Field(
        default=VolumeProtocol.ISCSI,
        description="How the volume host exports the disk: iscsi (tgt, CHAP + initiator ACL) "
        "or aoe (vblade, MAC ACL). Immutable.",
        json_schema_extra=immutable("spec.protocol"),
    )
    image: ResourceName | None = Field(
        default=None,
        description="Name of a cluster Image to fill the volume from. Immutable.",
        json_schema_extra=immutable("spec.image"),
    )
    availability_zone: LabelName | None = Field(
        default=None,
        description="Only place the volume on Hosts of this availability zone. Immutable.",
        json_schema_extra=immutable("spec.availabilityZone"),
    )
    multi_attach: bool = Field(
        default=False,
        description="Allow attaching to more than one Instance at once (the guests must "
        "coordinate writes).",
    )


class AttachmentState(StrEnum):
    ATTACHING = "Attaching"
    ATTACHED = "Attached"
    DETACHING = "Detaching"


class VolumeTarget(KubeModel):
    """Where the volume is exported."""

    portal: str | None = Field(default=None, description="iSCSI portal, host:port.")
    iqn: str | None = Field(default=None, description="iSCSI target name.")
    lun: int | None = Field(default=None, description="iSCSI logical unit number.")
    shelf: int | None = Field(default=None, description="AoE shelf (major) number.")
    slot: int | None = Field(default=None, description="AoE slot (minor) number.")
    interface: str | None = Field(default=None, description="AoE: the exporting interface.")
    chap_secret: str | None = Field(
        default=None,
        alias="chapSecret",
        description="Name of the Secret (same namespace) holding the CHAP credentials.",
    )


class VolumeAttachmentStatus(KubeModel):
    """One Instance the operator allowed to attach the volume, and how far that got."""

    instance: str = Field(description="The Instance the volume is attached to.")
    host: str | None = Field(default=None, description="The Host that Instance runs on.")
    state: AttachmentState | None = Field(
        default=None,
        description="Attaching (allowed, not yet plugged into the guest), Attached, or "
        "Detaching (removed from the Instance's spec.volumes, still plugged).",
    )
    device: str | None = Field(
        default=None,
        description="The disk's target name in the libvirt domain, e.g. vdb. The guest's "
        "kernel names virtio disks in the order it finds them, so inside the guest it may differ "
        "(the NoCloud seed comes first); the stable name there is "
        "/dev/disk/by-id/virtio-<the first 20 characters of the Volume's uid>.",
    )
    initiator: str | None = Field(
        default=None, description="iSCSI initiator name the host logs in with (target ACL)."
    )
    address: str | None = Field(
        default=None, description="The host's storage address (iSCSI ACL by address)."
    )
    mac: str | None = Field(default=None, description="The host's storage MAC (AoE ACL).")


class VolumeStatus(KubeModel):
    """The observed state of a Volume."""

    phase: VolumePhase | None = Field(
        default=None,
        description="Pending, Creating, Available, Attaching, InUse, Detaching, Deleting or Error.",
    )
    host: str | None = Field(default=None, description="The Host that stores and exports it.")
    target: VolumeTarget | None = Field(default=None, description="The export's identity.")
    attachments: list[VolumeAttachmentStatus] = Field(
        default_factory=list,
        description="Instances the volume is attached to (written by the operator).",
    )
    admitted_hosts: list[str] = Field(
        default_factory=list,
        description="Hosts the export's access list admits right now (written by the "
        "volume host's agent); an Instance's host attaches once it is listed here.",
    )
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = conditions_field()


class Volume(Resource):
    """A block device that Instances attach."""

    crd = CRDInfo(
        kind="Volume",
        plural="volumes",
        singular="volume",
        short_names=("vol",),
        namespaced=True,
        description="A Volume is a block device stored on a volume Host and exported over "
        "iSCSI or ATA over Ethernet to the Instances that attach it.",
        printer_columns=(
            phase_column(),
            PrinterColumn(name="Size", type="integer", json_path=".spec.sizeGiB"),
            PrinterColumn(name="Protocol", type="string", json_path=".spec.protocol"),
            PrinterColumn(name="Host", type="string", json_path=".status.host"),
            PrinterColumn(
                name="Attached", type="string", json_path=".status.attachments[*].instance"
            ),
            ready_column(),
            age_column(),
        ),
        selectable_fields=(".status.host",),
    )

    spec: VolumeSpec
    status: VolumeStatus | None = None
