"""tgtadm, the control tool of the userspace iSCSI target daemon tgtd: run it, read its answers.

`parse_targets` turns `tgtadm --op show --mode target` into records (pure, unit-tested on
captured output). `Tgtadm` runs commands against one tgtd (its control port `-C N`) and
maps failures onto the volume driver's errors: an unreachable daemon is temporary, a
refused command is an ExportFailure naming the command.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from kubenova.agents.volume import tgt_ipc
from kubenova.agents.volume.driver import ExportDaemonUnavailable, ExportFailure

_TARGET = re.compile(r"^Target (\d+): (\S+)$")
_LUN = re.compile(r"^\s+LUN: (\d+)$")
_BACKING = re.compile(r"^\s+Backing store path: (.*)$")
_NEXUS = re.compile(r"^\s+I_T nexus: (\d+)$")
_INITIATOR = re.compile(r"^\s+Initiator: (\S+)")
_CONNECTION = re.compile(r"^\s+Connection: (\d+)$")
_ADDRESS = re.compile(r"^\s+IP Address: (\S+)$")
# How tgtadm says that no daemon listens on the control port.
_UNREACHABLE = ("to tgt daemon", "Transport endpoint is not connected", "Connection refused")


@dataclass
class TgtSession:
    """One logged-in initiator (an I_T nexus) and its connections."""

    sid: int
    initiator: str = ""
    connections: dict[int, str] = field(default_factory=dict)  # cid -> initiator address


@dataclass
class TgtTarget:
    """One target as tgtd reports it."""

    tid: int
    iqn: str
    luns: dict[int, str | None] = field(default_factory=dict)  # lun -> backing path
    accounts: list[str] = field(default_factory=list)
    acl: list[str] = field(default_factory=list)
    nexuses: list[TgtSession] = field(default_factory=list)

    @property
    def sessions(self) -> int:
        return len(self.nexuses)


def parse_targets(text: str) -> list[TgtTarget]:
    """Records of `tgtadm --op show --mode target` output."""
    targets: list[TgtTarget] = []
    section = ""
    lun: int | None = None
    for line in text.splitlines():
        if match := _TARGET.match(line):
            targets.append(TgtTarget(int(match.group(1)), match.group(2)))
            section, lun = "", None
            continue
        if not targets or not line.strip():
            continue
        current = targets[-1]
        stripped = line.strip()
        if line.startswith("    ") and not line.startswith("     "):
            section = stripped.rstrip(":")  # a heading one level in: "LUN information" ...
            continue
        if section == "I_T nexus information":
            _parse_nexus_line(current, line)
        elif section == "LUN information":
            if match := _LUN.match(line):
                lun = int(match.group(1))
                current.luns[lun] = None
            elif (match := _BACKING.match(line)) and lun is not None:
                path = match.group(1).strip()
                current.luns[lun] = None if path in ("", "None") else path
        elif section == "Account information":
            if not stripped.endswith("(outgoing)"):
                current.accounts.append(stripped)
        elif section == "ACL information":
            current.acl.append(stripped)
    return targets


def _parse_nexus_line(target: TgtTarget, line: str) -> None:
    if match := _NEXUS.match(line):
        target.nexuses.append(TgtSession(int(match.group(1))))
    elif not target.nexuses:
        return
    elif match := _INITIATOR.match(line):
        target.nexuses[-1].initiator = match.group(1)
    elif match := _CONNECTION.match(line):
        target.nexuses[-1].connections[int(match.group(1))] = ""
    elif (match := _ADDRESS.match(line)) and target.nexuses[-1].connections:
        last = max(target.nexuses[-1].connections)  # the connection this address is of
        target.nexuses[-1].connections[last] = match.group(1)


class Tgtadm:
    """Commands against one tgtd."""

    def __init__(self, control_port: int | None = None, binary: str | None = None) -> None:
        found = binary or shutil.which("tgtadm")
        if found is None:
            raise ExportDaemonUnavailable(
                "tgtadm not found: install the Debian package tgt (hack/apt-packages.txt)"
            )
        self.binary = found
        self.control_port = control_port

    def targets(self) -> list[TgtTarget]:
        return parse_targets(self.run("--op", "show", "--mode", "target"))

    def accounts(self) -> list[str]:
        out = self.run("--op", "show", "--mode", "account")
        return [line.strip() for line in out.splitlines()[1:] if line.strip()]

    def new_target(self, tid: int, iqn: str) -> None:
        self.run("--op", "new", "--mode", "target", "--tid", str(tid), "-T", iqn)

    def delete_target(self, tid: int) -> None:
        # --force: a stale session of a detached initiator must not pin the target.
        self.run("--op", "delete", "--mode", "target", "--tid", str(tid), "--force")

    def new_lun(self, tid: int, lun: int, backing: Path) -> None:
        self.run(
            "--op", "new", "--mode", "logicalunit", "--tid", str(tid), "--lun", str(lun),
            "-b", str(backing),
        )  # fmt: skip

    def new_account(self, user: str, password: str) -> None:
        # Over tgtd's socket, not `tgtadm --password`: argv is readable by every local user.
        tgt_ipc.new_account(user, password, self.control_port)

    def delete_account(self, user: str) -> None:
        self.run("--op", "delete", "--mode", "account", "--user", user)

    def bind_account(self, tid: int, user: str) -> None:
        self.run("--op", "bind", "--mode", "account", "--tid", str(tid), "--user", user)

    def bind(self, tid: int, entry: str, *, by_name: bool) -> None:
        flag = "-Q" if by_name else "-I"
        self.run("--op", "bind", "--mode", "target", "--tid", str(tid), flag, entry)

    def unbind(self, tid: int, entry: str, *, by_name: bool) -> None:
        flag = "-Q" if by_name else "-I"
        self.run("--op", "unbind", "--mode", "target", "--tid", str(tid), flag, entry)

    def close_session(self, tid: int, session: TgtSession) -> None:
        """Drop every connection of an initiator's session (tgtd checks ACLs only at login)."""
        for cid in session.connections:
            self.run(
                "--op", "delete", "--mode", "conn", "--tid", str(tid),
                "--sid", str(session.sid), "--cid", str(cid),
            )  # fmt: skip

    def run(self, *args: str) -> str:
        command = [self.binary, "--lld", "iscsi"]
        if self.control_port is not None:
            command += ["-C", str(self.control_port)]
        command += list(args)
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=30, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise ExportDaemonUnavailable(f"tgtadm {' '.join(args[:4])} timed out") from exc
        if result.returncode == 0:
            return result.stdout
        message = (result.stderr or result.stdout).strip()
        if any(word in message for word in _UNREACHABLE):
            port = f" on control port {self.control_port}" if self.control_port else ""
            raise ExportDaemonUnavailable(
                f"tgtd is not reachable{port} ({message}): start the tgt daemon"
            )
        shown = " ".join(
            "***" if i and args[i - 1] == "--password" else arg for i, arg in enumerate(args)
        )
        raise ExportFailure(f"tgtadm {shown} failed: {message}")
