"""iSCSI exports through the userspace target daemon tgtd (Debian `tgt`), driven by tgtadm.

Each volume is a target of its own (IQN from the inventory, the file on LUN 1), with the
volume's CHAP account bound to it and an access list of the attached hosts. tgtd keeps
no configuration across its own restarts, so the agent's resync calls `export` again for
every volume and the missing targets come back; after an agent restart the targets are
found by IQN and adopted, never created twice.

tgtd admits an initiator matching *any* bound entry, names and addresses alike, so a
target is bound by one kind only: initiator names by default (every host has a distinct
IQN, also on one machine), or addresses on storage networks where hosts have their own.
tgtd checks its access list only at login: when a host leaves it (detached, or fenced), its
open sessions are closed (`tgtadm --op delete --mode conn`), or its guest would keep
writing through them.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from kubenova.agents.volume.driver import (
    Export,
    ExportDriver,
    ExportFailure,
    ExportSpec,
    IscsiTarget,
    Target,
    admitted,
)
from kubenova.agents.volume.tgtadm import Tgtadm, TgtTarget

AclKind = Literal["initiator-name", "address"]


@dataclass(frozen=True)
class TgtSettings:
    """Where tgtd listens and which of its targets are ours."""

    portal: str  # "address:port" that initiators connect to
    storage_dir: Path  # targets whose LUN file lies here are kubenova's
    control_port: int | None = None  # tgtd -C N; None: the daemon's default socket
    acl_by: AclKind = "initiator-name"
    tgtadm: str | None = None  # path of the binary; default: found on PATH


def _is_name(entry: str) -> bool:
    return entry.startswith(("iqn.", "eui.", "naa."))


class TgtDriver(ExportDriver):
    """ExportDriver on one tgtd."""

    protocol = "iscsi"

    def __init__(self, settings: TgtSettings) -> None:
        self.settings = settings
        self.tgtadm = Tgtadm(settings.control_port, settings.tgtadm)
        # tids are chosen from what tgtd shows: one change at a time in this process.
        self._lock = threading.Lock()
        # CHAP user -> digest of the password this process set; after an agent restart the
        # password is set once more (tgtd never shows it).
        self._passwords: dict[str, str] = {}

    def location(self) -> str:
        return self.settings.portal

    def export(self, spec: ExportSpec) -> Export:
        target = spec.target
        if not isinstance(target, IscsiTarget):
            raise ValueError(f"the tgt driver exports iSCSI targets, not {target}")
        with self._lock:
            found = {t.iqn: t for t in self.tgtadm.targets()}
            current = found.get(target.iqn)
            if current is None:
                tid = max((t.tid for t in found.values()), default=0) + 1
                self.tgtadm.new_target(tid, target.iqn)
                current = TgtTarget(tid, target.iqn)
            served = current.luns.get(target.lun, "absent")
            if served == "absent":
                self.tgtadm.new_lun(current.tid, target.lun, spec.backing)
            elif served != str(spec.backing):
                raise ExportFailure(
                    f"target {target.iqn} serves {served} on LUN {target.lun}, "
                    f"not {spec.backing}: delete that target by hand (tgtadm --op delete)"
                )
            self._converge_account(current, spec)
            acl = self._converge_acl(current, spec)
            current = self._close_unlisted_sessions(current, acl)
        return Export(
            target=target,
            backing=spec.backing,
            acl=acl,
            admitted_hosts=admitted(spec, acl, self._identity()),
            location=self.settings.portal,
            sessions=current.sessions,
        )

    def unexport(self, target: Target) -> None:
        if not isinstance(target, IscsiTarget):
            raise ValueError(f"the tgt driver exports iSCSI targets, not {target}")
        with self._lock:
            targets = self.tgtadm.targets()
            current = next((t for t in targets if t.iqn == target.iqn), None)
            if current is None:
                return
            self.tgtadm.delete_target(current.tid)
            still_bound = {a for t in targets if t.tid != current.tid for a in t.accounts}
            for user in current.accounts:
                if user not in still_bound:
                    self._delete_account(user)

    def exports(self) -> list[Export]:
        ours = []
        for found in self.tgtadm.targets():
            for lun, path in found.luns.items():
                if path is not None and Path(path).parent == self.settings.storage_dir:
                    ours.append(
                        Export(
                            target=IscsiTarget(found.iqn, lun),
                            backing=Path(path),
                            acl=tuple(found.acl),
                            location=self.settings.portal,
                            sessions=found.sessions,
                        )
                    )
        return ours

    # -- pieces --------------------------------------------------------------------------------

    def _identity(self) -> str:
        return "iqn" if self.settings.acl_by == "initiator-name" else "address"

    def _converge_account(self, current: TgtTarget, spec: ExportSpec) -> None:
        wanted = spec.chap.username if spec.chap else None
        for user in current.accounts:
            if user != wanted:
                self.tgtadm.run(
                    "--op", "unbind", "--mode", "account", "--tid", str(current.tid),
                    "--user", user,
                )  # fmt: skip
        if spec.chap is None:
            return
        user = spec.chap.username
        digest = hashlib.sha256(spec.chap.password.encode()).hexdigest()
        accounts = self.tgtadm.accounts()
        # Set by us with this password, and still there (a restarted tgtd lost it).
        known = self._passwords.get(user) == digest and user in accounts
        if not known:
            # tgtd cannot change a password in place, nor show one: set it afresh.
            if user in accounts:
                self._delete_account(user)
            self.tgtadm.new_account(user, spec.chap.password)
            self._passwords[user] = digest
        if not known or user not in current.accounts:
            self.tgtadm.bind_account(current.tid, user)

    def _delete_account(self, user: str) -> None:
        self.tgtadm.delete_account(user)
        self._passwords.pop(user, None)

    def _close_unlisted_sessions(self, current: TgtTarget, acl: tuple[str, ...]) -> TgtTarget:
        """Close every session of an initiator the access list no longer admits."""
        if not current.nexuses:
            return current
        by_name = self._identity() == "iqn"
        closed = False
        for session in current.nexuses:
            if by_name:
                admitted_now = session.initiator in acl
            else:
                admitted_now = all(address in acl for address in session.connections.values())
            if not admitted_now:
                self.tgtadm.close_session(current.tid, session)
                closed = True
        if not closed:
            return current
        found = next((t for t in self.tgtadm.targets() if t.tid == current.tid), None)
        return found or current

    def _converge_acl(self, current: TgtTarget, spec: ExportSpec) -> tuple[str, ...]:
        identity = self._identity()
        wanted: set[str] = {v for i in spec.initiators if (v := getattr(i, identity))}
        for entry in current.acl:
            if entry not in wanted:
                self.tgtadm.unbind(current.tid, entry, by_name=_is_name(entry))
        for entry in sorted(wanted - set(current.acl)):
            self.tgtadm.bind(current.tid, entry, by_name=identity == "iqn")
        return tuple(sorted(wanted))
