"""What the agent asks a compute driver for: frozen, typed, free of Kubernetes and libvirt."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from kubenova.agents.images.fetcher import KernelBoot

DOMAIN_PREFIX = "kubenova-"
# Linux interface names are at most 15 bytes (IFNAMSIZ - 1).
MAX_TAP_NAME = 15
# Namespace for domain UUIDs of instance UIDs that are not UUIDs themselves.
_UID_NAMESPACE = uuid.UUID("6f1d4c62-3a55-4c1e-9a51-2b8e3f0f6a10")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_TARGET_DEV = re.compile(r"^vd[a-z]{1,2}$")
# vda is the root disk, vdz the cloud-init seed.
RESERVED_TARGETS = ("vda", "vdz")


class DiskFormat(StrEnum):
    """Formats of a base image or a volume file, as QEMU names them."""

    RAW = "raw"
    QCOW2 = "qcow2"


def domain_name_for(uid: str) -> str:
    """The libvirt domain name of an Instance: carries its UID so a restarted agent adopts it."""
    return f"{DOMAIN_PREFIX}{uid}"


def uid_from_domain_name(name: str) -> str | None:
    """The Instance UID in a domain name of ours, or None for somebody else's domain."""
    return name[len(DOMAIN_PREFIX) :] if name.startswith(DOMAIN_PREFIX) else None


@dataclass(frozen=True)
class RootDisk:
    """The instance's root disk: a qcow2 overlay the driver creates on a cached base image."""

    base_image: Path
    base_format: DiskFormat = DiskFormat.QCOW2
    # Virtual size of the overlay; None keeps the base image's size.
    size_gib: int | None = None


@dataclass(frozen=True)
class Nic:
    """A virtio NIC plugged into a Linux bridge that the network service made."""

    bridge: str
    mac: str
    tap: str
    model: str = "virtio"

    def __post_init__(self) -> None:
        if not _MAC.match(self.mac):
            raise ValueError(f"MAC {self.mac!r} must be six lower-case hex pairs, e.g. 52:54:00:..")
        if not 0 < len(self.tap) <= MAX_TAP_NAME:
            raise ValueError(f"tap name {self.tap!r} must be 1-{MAX_TAP_NAME} characters")


@dataclass(frozen=True)
class IscsiAuth:
    """CHAP credentials: the user name here, the password in a libvirt secret of this usage."""

    username: str
    secret_usage: str


@dataclass(frozen=True)
class IscsiVolume:
    """A volume exported by an iSCSI target, opened by QEMU's own initiator."""

    volume_id: str
    host: str
    port: int
    iqn: str
    lun: int
    auth: IscsiAuth | None = None
    # The name QEMU's initiator logs in with; target access lists admit by it.
    initiator: str | None = None


@dataclass(frozen=True)
class FileVolume:
    """A volume that is a file on this host (local volumes, and tests)."""

    volume_id: str
    path: Path
    format: DiskFormat = DiskFormat.RAW


VolumeSource = IscsiVolume | FileVolume


@dataclass(frozen=True)
class DiskAttachment:
    """A volume as the guest sees it: on virtio target `target_dev` (vdb, vdc, ...)."""

    volume: VolumeSource
    target_dev: str
    read_only: bool = False

    def __post_init__(self) -> None:
        if not _TARGET_DEV.match(self.target_dev) or self.target_dev in RESERVED_TARGETS:
            raise ValueError(
                f"target {self.target_dev!r} must match vd[a-z]{{1,2}} other than "
                f"{' and '.join(RESERVED_TARGETS)} (root disk and cloud-init seed)"
            )


@dataclass(frozen=True)
class CloudInitSeed:
    """cloud-init NoCloud data, given to the guest as an ISO labelled `cidata`."""

    instance_id: str
    hostname: str
    user_data: str | None = None
    ssh_authorized_keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class DomainSpec:
    """Everything a driver needs to build and run one Instance's domain."""

    uid: str
    namespace: str
    name: str
    vcpus: int
    memory_mib: int
    root_disk: RootDisk | None = None
    kernel_boot: KernelBoot | None = None
    nics: tuple[Nic, ...] = ()
    volumes: tuple[DiskAttachment, ...] = ()
    seed: CloudInitSeed | None = None
    # Free-form key/values recorded in the domain's <metadata> (namespace/name go there too).
    labels: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        if not re.match(r"^[a-z0-9][a-z0-9-]{0,62}$", self.uid):
            raise ValueError(f"uid {self.uid!r} must be lower-case letters, digits and dashes")
        if self.vcpus < 1 or self.memory_mib < 16:
            raise ValueError("an instance needs at least 1 vCPU and 16 MiB of memory")
        if self.root_disk is None and self.kernel_boot is None:
            raise ValueError("an instance needs a root disk or a kernel to boot")
        targets = [attachment.target_dev for attachment in self.volumes]
        if len(targets) != len(set(targets)):
            raise ValueError(f"volume targets must be distinct, got {targets}")

    @property
    def domain_name(self) -> str:
        return domain_name_for(self.uid)

    @property
    def domain_uuid(self) -> str:
        """The domain's UUID: the Kubernetes UID itself, so a second define is the same domain."""
        try:
            return str(uuid.UUID(self.uid))
        except ValueError:
            return str(uuid.uuid5(_UID_NAMESPACE, self.uid))
