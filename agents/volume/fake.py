"""An in-memory export table behind the driver contract, for unit and scale tests.

The table lives in a `FakeExportDaemon` that several drivers can share, so a test can
restart "the agent" (a new driver on the same daemon: exports are adopted) or "the
daemon" (`restart()`: every export is gone, as after a tgtd restart). It passes the same
contract suite as the real drivers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from kubenova.agents.volume.driver import (
    AoeTarget,
    Export,
    ExportDaemonUnavailable,
    ExportDriver,
    ExportFailure,
    ExportSpec,
    IscsiTarget,
    Target,
    admitted,
)


@dataclass
class FakeExportDaemon:
    """What a real daemon would hold: exports by target key."""

    exports: dict[str, Export] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)  # target key -> CHAP user
    down: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def restart(self) -> None:
        """The daemon restarts and forgets everything (tgtd keeps no configuration)."""
        with self.lock:
            self.exports.clear()
            self.credentials.clear()


class FakeExportDriver(ExportDriver):
    """ExportDriver on a FakeExportDaemon; `protocol` says which targets it serves."""

    def __init__(
        self,
        protocol: str = "iscsi",
        daemon: FakeExportDaemon | None = None,
        location: str = "127.0.0.1:3260",
    ) -> None:
        if protocol not in ("iscsi", "aoe"):
            raise ValueError(f"protocol must be iscsi or aoe, not {protocol!r}")
        self.protocol = protocol
        self.daemon = daemon or FakeExportDaemon()
        self._location = location

    def location(self) -> str:
        return self._location

    def export(self, spec: ExportSpec) -> Export:
        self._check(spec.target)
        identity = "iqn" if self.protocol == "iscsi" else "mac"
        acl = tuple(sorted({v for i in spec.initiators if (v := getattr(i, identity))}))
        export = Export(
            target=spec.target,
            backing=spec.backing,
            acl=acl,
            admitted_hosts=admitted(spec, acl, identity),
            location=self._location,
        )
        with self.daemon.lock:
            previous = self.daemon.exports.get(spec.target.key)
            if previous is not None and previous.backing != spec.backing:
                raise ExportFailure(
                    f"target {spec.target.key} serves {previous.backing}, not {spec.backing}"
                )
            self.daemon.exports[spec.target.key] = export
            if spec.chap is not None:
                self.daemon.credentials[spec.target.key] = spec.chap.username
        return export

    def unexport(self, target: Target) -> None:
        self._check(target)
        with self.daemon.lock:
            self.daemon.exports.pop(target.key, None)
            self.daemon.credentials.pop(target.key, None)

    def exports(self) -> list[Export]:
        self._check(None)
        with self.daemon.lock:
            return [replace(e, admitted_hosts=()) for e in self.daemon.exports.values()]

    def _check(self, target: Target | None) -> None:
        if self.daemon.down:
            raise ExportDaemonUnavailable("the fake export daemon is down")
        wanted = IscsiTarget if self.protocol == "iscsi" else AoeTarget
        if target is not None and not isinstance(target, wanted):
            raise ValueError(f"a {self.protocol} driver exports no {target}")
