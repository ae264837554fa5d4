"""The volume export contract: what every block-export backend (tgt, vblade, fake) does.

A driver publishes a backing file under an export identity the operator allocated (an
iSCSI IQN + LUN, or an AoE shelf/slot) and keeps its access list equal to the hosts the
volume is attached to. It knows nothing of Kubernetes.

Errors a caller should expect (all from kubenova.errors' tree):
    ExportDaemonUnavailable  tgtd / the vblade binary cannot be reached now (TemporaryError)
    ExportFailure            the daemon refused this export; the message says why
Every method is idempotent: calling it again after success changes nothing.
"""

from __future__ import annotations

import abc
import re
from dataclasses import dataclass, field
from pathlib import Path

from kubenova.errors import KubenovaError, TemporaryError

_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


class ExportDaemonUnavailable(TemporaryError):
    """The export daemon cannot be reached or started; retry later."""

    reason = "ExportDaemonUnavailable"


class ExportFailure(KubenovaError):
    """The export daemon refused to create or change an export."""

    reason = "ExportFailed"


@dataclass(frozen=True)
class Initiator:
    """A host allowed in: its iSCSI initiator name, storage address and MAC (what it has)."""

    host: str
    iqn: str | None = None
    address: str | None = None
    mac: str | None = None

    def __post_init__(self) -> None:
        if self.mac is not None and not _MAC.match(self.mac):
            raise ValueError(f"MAC {self.mac!r} must be six lower-case hex pairs")


@dataclass(frozen=True)
class ChapCredentials:
    """The CHAP user and secret an initiator must log in with (iSCSI only)."""

    username: str
    password: str = field(repr=False)


@dataclass(frozen=True)
class IscsiTarget:
    """An iSCSI target of its own per volume; the disk is its `lun`."""

    iqn: str
    lun: int = 1

    @property
    def key(self) -> str:
        return self.iqn


@dataclass(frozen=True)
class AoeTarget:
    """An ATA-over-Ethernet device address: shelf (major) and slot (minor)."""

    shelf: int
    slot: int

    def __post_init__(self) -> None:
        if not (0 <= self.shelf < 0xFFFF and 0 <= self.slot < 0xFF):
            raise ValueError(f"AoE address e{self.shelf}.{self.slot} is out of range")

    @property
    def key(self) -> str:
        return f"e{self.shelf}.{self.slot}"


Target = IscsiTarget | AoeTarget


@dataclass(frozen=True)
class ExportSpec:
    """One volume to publish: its backing file, identity, credentials and access list."""

    volume_uid: str
    backing: Path
    target: Target
    chap: ChapCredentials | None = None
    initiators: tuple[Initiator, ...] = ()


@dataclass(frozen=True)
class Export:
    """An export as the daemon has it now."""

    target: Target
    backing: Path
    # The access list as the daemon holds it: initiator names or addresses (iSCSI), MACs (AoE).
    acl: tuple[str, ...] = ()
    # Hosts of the spec that the access list admits (what the service reports).
    admitted_hosts: tuple[str, ...] = ()
    # Where initiators reach it: "address:port" (iSCSI) or the interface name (AoE).
    location: str = ""
    sessions: int = 0


class ExportDriver(abc.ABC):
    """One host's export daemon, seen as volumes."""

    protocol: str  # "iscsi" or "aoe": the Volume spec.protocol the driver serves

    @abc.abstractmethod
    def export(self, spec: ExportSpec) -> Export:
        """Publish the volume (or bring an existing export's access list and credentials in
        line with `spec`); returns the export as it now is."""

    @abc.abstractmethod
    def unexport(self, target: Target) -> None:
        """Withdraw the export and its credentials; absent is fine."""

    @abc.abstractmethod
    def exports(self) -> list[Export]:
        """Every export of ours the daemon holds (adoption after an agent restart)."""

    @abc.abstractmethod
    def location(self) -> str:
        """Where initiators reach this host's exports (portal or interface)."""

    def close(self) -> None:  # noqa: B027 - most drivers hold nothing to release
        """Release what the driver holds (exports stay published)."""


def admitted(spec: ExportSpec, acl: tuple[str, ...], identity: str) -> tuple[str, ...]:
    """Hosts of `spec` whose identity attribute (`iqn`, `address` or `mac`) is in `acl`."""
    held = set(acl)
    return tuple(sorted({i.host for i in spec.initiators if getattr(i, identity) in held}))
