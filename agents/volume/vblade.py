"""ATA-over-Ethernet exports with vblade (Debian `vblade`): one process per exported volume.

`vblade -m <macs> <shelf> <slot> <interface> <file>` serves the file to the MACs listed and
ignores every other frame. vblade reads its access list once, so a changed list restarts
the process. A volume attached nowhere runs no vblade at all: started without `-m`,
vblade would answer anyone. Processes run in their own session and outlive an agent
restart; a record per export (pid and command line) lets the next agent adopt them. With
`netns` set, vblade runs in that network namespace (the storage network of tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from kubenova.agents.volume.driver import (
    AoeTarget,
    Export,
    ExportDaemonUnavailable,
    ExportDriver,
    ExportFailure,
    ExportSpec,
    Target,
    admitted,
)

# vblade that exits this soon after start did not come up (bad interface or file).
STARTUP_CHECK = 0.2
STOP_TIMEOUT = 5.0


@dataclass(frozen=True)
class VbladeSettings:
    """The interface exports go out on, where records live, and an optional namespace."""

    interface: str
    storage_dir: Path
    run_dir: Path
    netns: str | None = None
    vblade: str | None = None  # path of the binary; default: found on PATH


@dataclass
class _Record:
    """What we know of one export: its command line, and its process if one runs."""

    shelf: int
    slot: int
    backing: str
    macs: list[str]
    argv: list[str]
    pid: int | None = None


class VbladeDriver(ExportDriver):
    """ExportDriver running one vblade per attached volume."""

    protocol = "aoe"

    def __init__(self, settings: VbladeSettings) -> None:
        binary = settings.vblade or shutil.which("vblade")
        if binary is None:
            raise ExportDaemonUnavailable(
                "vblade not found: install the Debian package vblade (hack/apt-packages.txt)"
            )
        self.binary = binary
        self.settings = settings
        self._children: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()

    def location(self) -> str:
        return self.settings.interface

    def export(self, spec: ExportSpec) -> Export:
        target = spec.target
        if not isinstance(target, AoeTarget):
            raise ValueError(f"the vblade driver exports AoE targets, not {target}")
        macs = sorted({i.mac for i in spec.initiators if i.mac is not None})
        argv = [self.binary, "-m", ",".join(macs), str(target.shelf), str(target.slot)]
        argv += [self.settings.interface, str(spec.backing)]
        with self._lock:
            record = self._read(target)
            if record is not None and record.backing != str(spec.backing):
                raise ExportFailure(
                    f"{target.key} serves {record.backing}, not {spec.backing}: "
                    f"remove {self._record_path(target)} after stopping its vblade"
                )
            running = record is not None and self._alive(record)
            if record is None or record.argv != argv or (macs and not running):
                if record is not None:
                    self._stop(record)
                record = _Record(target.shelf, target.slot, str(spec.backing), macs, argv)
                if macs:
                    record.pid = self._start(target, argv)
                self._write(target, record)
        return Export(
            target=target,
            backing=spec.backing,
            acl=tuple(macs),
            admitted_hosts=admitted(spec, tuple(macs), "mac"),
            location=self.settings.interface,
        )

    def unexport(self, target: Target) -> None:
        if not isinstance(target, AoeTarget):
            raise ValueError(f"the vblade driver exports AoE targets, not {target}")
        with self._lock:
            record = self._read(target)
            if record is not None:
                self._stop(record)
            self._record_path(target).unlink(missing_ok=True)
            self._log_path(target).unlink(missing_ok=True)

    def exports(self) -> list[Export]:
        found: list[Export] = []
        if not self.settings.run_dir.is_dir():
            return found
        for path in sorted(self.settings.run_dir.glob("e*.json")):
            record = _load(path)
            if record is None:
                continue
            running = self._alive(record)
            found.append(
                Export(
                    target=AoeTarget(record.shelf, record.slot),
                    backing=Path(record.backing),
                    acl=tuple(record.macs) if running else (),
                    location=self.settings.interface,
                )
            )
        return found

    def close(self) -> None:
        """Forget our children without stopping them: exports outlive the agent."""
        self._children.clear()

    # -- processes -----------------------------------------------------------------------------

    def _start(self, target: AoeTarget, argv: list[str]) -> int:
        command = argv
        if self.settings.netns is not None:
            # `ip netns exec` execs vblade in place: the pid and command line are vblade's.
            command = ["ip", "netns", "exec", self.settings.netns, *argv]
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        with self._log_path(target).open("ab") as log:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._children[child.pid] = child
        deadline = time.monotonic() + STARTUP_CHECK
        while time.monotonic() < deadline:
            if child.poll() is not None:
                self._children.pop(child.pid, None)
                tail = self._log_path(target).read_text(errors="replace").strip()[-500:]
                raise ExportFailure(
                    f"vblade for {target.key} on {self.settings.interface} exited at once "
                    f"(status {child.returncode}): {tail}"
                )
            time.sleep(0.02)
        return child.pid

    def _alive(self, record: _Record) -> bool:
        if record.pid is None:
            return False
        child = self._children.get(record.pid)
        if child is not None:
            return child.poll() is None
        try:
            cmdline = Path(f"/proc/{record.pid}/cmdline").read_bytes()
            state = Path(f"/proc/{record.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        # A recycled pid runs something else; a zombie is dead.
        return state != "Z" and cmdline.split(b"\0")[:-1] == [a.encode() for a in record.argv]

    def _stop(self, record: _Record) -> None:
        if record.pid is None or not self._alive(record):
            self._reap(record.pid)
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        while self._alive(record) and time.monotonic() < deadline:
            self._reap(record.pid)
            time.sleep(0.02)
        if self._alive(record):
            with contextlib.suppress(ProcessLookupError):
                os.kill(record.pid, signal.SIGKILL)
        self._reap(record.pid)

    def _reap(self, pid: int | None) -> None:
        if pid is None:
            return
        child = self._children.pop(pid, None)
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=STOP_TIMEOUT)
            return
        # Our own child from before (same process, new driver): collect it.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)

    # -- records -------------------------------------------------------------------------------

    def _record_path(self, target: AoeTarget) -> Path:
        return self.settings.run_dir / f"{target.key}.json"

    def _log_path(self, target: AoeTarget) -> Path:
        return self.settings.run_dir / f"{target.key}.log"

    def _read(self, target: AoeTarget) -> _Record | None:
        return _load(self._record_path(target))

    def _write(self, target: AoeTarget, record: _Record) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        path = self._record_path(target)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(record.__dict__))
        os.replace(partial, path)


def _load(path: Path) -> _Record | None:
    try:
        return _Record(**json.loads(path.read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None
