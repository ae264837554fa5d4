"""Image: a bootable disk image stored in the S3 object store (cluster-scoped)."""

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


class ImageFormat(StrEnum):
    RAW = "raw"
    QCOW2 = "qcow2"


class ImagePhase(StrEnum):
    PENDING = "Pending"
    AVAILABLE = "Available"
    ERROR = "Error"


class SecretReference(KubeModel):
    name: ResourceName = Field(description="Secret name.")
    namespace: LabelName = Field(description="Secret namespace.")


class ImageSource(KubeModel):
    """Where the image bytes live in the object store."""

    bucket: str = Field(
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$",
        description="S3 bucket name.",
    )
    key: str = Field(min_length=1, max_length=1024, description="Object key in the bucket.")
    credentials_secret: SecretReference | None = Field(
        default=None,
        alias="credentialsSecret",
        description="Secret with accessKey/secretKey (and optional endpoint) for the object "
        "store; the agent's configured store when omitted.",
    )


class BootSpec(KubeModel):
    """Direct kernel boot, for images that carry no bootloader (e.g. test guests)."""

    kernel: ImageSource = Field(description="Kernel image object.")
    initrd: ImageSource | None = Field(default=None, description="Initramfs object.")
    cmdline: str = Field(
        default="console=ttyS0", max_length=4096, description="Kernel command line."
    )


class ImageSpec(KubeModel):
    """The desired state of an Image. Images are immutable: upload a new one instead."""

    model_config = {"json_schema_extra": immutable("an Image's spec")}

    source: ImageSource = Field(description="The disk image object in the object store.")
    format: ImageFormat = Field(default=ImageFormat.QCOW2, description="raw or qcow2.")
    sha256: str = Field(
        pattern=r"^[a-f0-9]{64}$",
        description="Lower-case hex SHA-256 of the object; hosts refuse a download that "
        "does not match.",
    )
    min_disk_gib: int = Field(
        default=1, alias="minDiskGiB", ge=1, le=65536, description="Smallest root disk it fits."
    )
    min_memory_mib: int = Field(
        default=64, alias="minMemoryMiB", ge=64, description="Smallest memory it boots with."
    )
    boot: BootSpec | None = Field(default=None, description="Direct kernel boot, if needed.")


class ImageStatus(KubeModel):
    phase: ImagePhase | None = Field(default=None, description="Pending, Available or Error.")
    size_bytes: int | None = Field(default=None, description="Object size in bytes.")
    observed_generation: int | None = Field(default=None)
    conditions: list[Condition] = conditions_field()


class Image(Resource):
    """A bootable disk image."""

    crd = CRDInfo(
        kind="Image",
        plural="images",
        singular="image",
        short_names=("img",),
        namespaced=False,
        description="An Image is a bootable disk image in the S3 object store, checked by "
        "SHA-256 on every host that downloads it.",
        printer_columns=(
            phase_column(),
            PrinterColumn(name="Format", type="string", json_path=".spec.format"),
            PrinterColumn(name="Size", type="integer", json_path=".status.sizeBytes"),
            age_column(),
        ),
    )

    spec: ImageSpec
    status: ImageStatus | None = None
