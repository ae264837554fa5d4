"""The compute driver contract (Nova's virt/driver.py idea): what every hypervisor backend does.

Errors a caller should expect (all from kubenova.errors' tree):
    InstanceNotFound       the instance has no domain on this host (not retried by itself)
    HypervisorUnavailable  libvirtd unreachable or refusing for now (TemporaryError: retry)
    ComputeFailure         the hypervisor refused this instance (bad image, QEMU died, ...)
Every method is idempotent: calling it again after success changes nothing.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kubenova.agents.compute.spec import DiskAttachment, DomainSpec
from kubenova.errors import KubenovaError, TemporaryError


class DomainState(StrEnum):
    """A domain's state, reduced to what an Instance's status needs."""

    RUNNING = "Running"
    PAUSED = "Paused"
    SHUTTING_DOWN = "ShuttingDown"
    SHUTOFF = "Shutoff"
    CRASHED = "Crashed"
    UNKNOWN = "Unknown"


@dataclass(frozen=True)
class InstanceInfo:
    """What the hypervisor says about one instance right now."""

    uid: str
    domain_name: str
    domain_uuid: str
    state: DomainState
    vcpus: int
    memory_mib: int
    # Target devices of attached volumes (vdb, ...), root disk and seed excluded.
    volume_targets: tuple[str, ...] = ()
    console_log: Path | None = None
    # `namespace/name` of the Instance it was defined for (None if the domain does not say).
    instance_key: str | None = None


@dataclass(frozen=True)
class LifecycleEvent:
    """A domain changed (started, stopped, crashed, defined...); `uid` names the Instance."""

    uid: str
    domain_name: str
    # None for changes that say nothing about power (defined, undefined).
    state: DomainState | None
    detail: str


LifecycleCallback = Callable[[LifecycleEvent], None]


class InstanceNotFound(KubenovaError):
    """No domain for this instance on this host."""

    reason = "InstanceNotFound"


class HypervisorUnavailable(TemporaryError):
    """libvirtd cannot be reached or is busy; the operation may be retried."""

    reason = "HypervisorUnavailable"


class ComputeFailure(KubenovaError):
    """The hypervisor refused to build or run the instance; the message says why."""

    reason = "ComputeFailure"


class ComputeDriver(abc.ABC):
    """One host's hypervisor, seen as Instances. Domains are named `kubenova-<uid>`."""

    @abc.abstractmethod
    def spawn(self, spec: DomainSpec) -> InstanceInfo:
        """Create storage, define and start the domain; if it exists, only make sure it runs."""

    @abc.abstractmethod
    def power_on(self, uid: str) -> None:
        """Start a defined, stopped instance (a running one is left alone)."""

    @abc.abstractmethod
    def power_off(self, uid: str, *, timeout: float | None = None) -> None:
        """ACPI shutdown, forced off after `timeout` seconds (None: the driver's default)."""

    @abc.abstractmethod
    def reboot(self, uid: str, *, hard: bool = False) -> None:
        """Reboot through the guest (ACPI), or reset the virtual machine when `hard`."""

    @abc.abstractmethod
    def resize(self, uid: str, vcpus: int, memory_mib: int, disk_gib: int) -> None:
        """Redefine a shut-off domain with `vcpus` and `memory_mib`, and grow its root disk
        to `disk_gib` if smaller (never shrunk); ComputeFailure if the domain runs."""

    @abc.abstractmethod
    def destroy(self, uid: str) -> None:
        """Stop and undefine the domain and remove its overlay and seed; absent is fine."""

    @abc.abstractmethod
    def get_info(self, uid: str) -> InstanceInfo:
        """The instance's state, domain UUID and attachments; InstanceNotFound if absent."""

    @abc.abstractmethod
    def list_instances(self) -> list[InstanceInfo]:
        """Every domain of ours on this host (running or not), for adoption after a restart."""

    @abc.abstractmethod
    def attach_volume(self, uid: str, attachment: DiskAttachment) -> None:
        """Hot-plug (and persist) a volume; attaching the same target again is a no-op."""

    @abc.abstractmethod
    def detach_volume(self, uid: str, target_dev: str, *, timeout: float = 30.0) -> None:
        """Unplug the volume on `target_dev` and wait until the guest released it."""

    @abc.abstractmethod
    def define_secret(self, usage: str, value: bytes, description: str) -> None:
        """Store a CHAP password the hypervisor gives QEMU for disks naming `usage`."""

    @abc.abstractmethod
    def undefine_secret(self, usage: str) -> None:
        """Forget the secret of `usage`; absent is fine."""

    @abc.abstractmethod
    def list_secrets(self, prefix: str) -> dict[str, str]:
        """usage -> description of the iSCSI secrets whose usage starts with `prefix`."""

    @abc.abstractmethod
    def secret_defined_at(self, usage: str) -> float | None:
        """When (time.monotonic) this driver last defined or set the secret of `usage`."""

    @abc.abstractmethod
    def secrets_in_use(self) -> set[str]:
        """The secret usages the disks of any domain on this host (running or defined) name."""

    @abc.abstractmethod
    def console_log(self, uid: str) -> Path | None:
        """The file the instance's serial console is written to, if the driver keeps one."""

    @abc.abstractmethod
    def subscribe(self, callback: LifecycleCallback) -> None:
        """Call `callback` (from a driver thread) on each lifecycle change of our domains."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the hypervisor connection and stop event delivery."""
