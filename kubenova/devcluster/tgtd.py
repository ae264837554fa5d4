"""A private tgtd (userspace iSCSI target) for `kubenova dev`: the dev cloud's volume service.

Started as the tests start theirs (tests/fixtures/tgtd.py): its own control port
(`tgtd -C N`, socket /var/run/tgtd/socket.N) and an iSCSI portal on 127.0.0.1, so a
system tgtd or another test's is never touched. The ports are kept in `<root>/ports` and
reused by the next `up`: Volumes placed earlier name this portal in their status.

tgtd ignores SIGTERM (docs/running-the-real-components.md): `stop` deletes its targets and
then the system (`tgtadm --op delete --mode system`), SIGKILL only as a last resort, and
removes the control socket. Stop it after the guests using its targets are gone: deleting
a target with a live session hangs the QEMU client.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.processes import ProcessSpec, command_line, launch, log_tail, stop_pid

SOCKET_DIR = Path("/var/run/tgtd")
PORTAL_HOST = "127.0.0.1"
ISCSI_PORT = 3260


def _which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise ControlPlaneError(
            f"{tool} not found: install the Debian package tgt (hack/apt-packages.txt, "
            "hack/install-deps.sh)"
        )
    return path


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((PORTAL_HOST, port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((PORTAL_HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _control_port_free(number: int) -> bool:
    return not (SOCKET_DIR / f"socket.{number}").exists()


def _free_control_port() -> int:
    for _ in range(1000):
        number = random.randint(16384, 32767)  # tgtd accepts -C 0..32767
        if _control_port_free(number):
            return number
    raise ControlPlaneError(f"no free tgtd control port: {SOCKET_DIR} is full of sockets")


class PrivateTgtd:
    """One tgtd whose pid, log and ports live under `root`.

    With `netns` (a node's network namespace, `portal_host` its address), tgtd serves the
    standard iSCSI port inside that namespace, where an agent's default portal
    (<underlay-ip>:3260) finds it; its control socket is a path, reachable from anywhere.
    """

    def __init__(
        self, root: Path, *, netns: str | None = None, portal_host: str = PORTAL_HOST
    ) -> None:
        self.root = root.resolve()
        self.netns = netns
        self.portal_host = portal_host
        self.control_port, self.portal_port = self._ports()

    @property
    def portal(self) -> str:
        """What initiators connect to, `address:port` (the agent's --iscsi-portal)."""
        return f"{self.portal_host}:{self.portal_port}"

    @property
    def spec(self) -> ProcessSpec:
        # nsenter execs tgtd: the launched pid is tgtd's own.
        inside = ("nsenter", f"--net=/run/netns/{self.netns}") if self.netns else ()
        argv = (
            *inside,
            _which("tgtd"),
            "-f",
            "-C",
            str(self.control_port),
            "--iscsi",
            f"portal={self.portal}",
        )
        return ProcessSpec("tgtd", argv, self.root / "tgtd.log", self.root / "tgtd.pid")

    def _ports(self) -> tuple[int, int]:
        # The saved pair while this tgtd runs or both are still free; new ones otherwise.
        # In a namespace of its own, the portal is always the standard port.
        saved = self.root / "ports"
        with contextlib.suppress(OSError, ValueError):
            control, portal = (int(part) for part in saved.read_text().split())
            if self._pid_from_file() is not None or (
                _control_port_free(control) and (self.netns is not None or _port_free(portal))
            ):
                return control, ISCSI_PORT if self.netns is not None else portal
        return _free_control_port(), ISCSI_PORT if self.netns is not None else _free_port()

    def _pid_from_file(self) -> int | None:
        try:
            pid = int((self.root / "tgtd.pid").read_text().strip())
        except (OSError, ValueError):
            return None
        argv = command_line(pid)
        # Ours only: a tgtd on our control port (never another helper's after pid reuse).
        if argv and Path(argv[0]).name == "tgtd" and "-C" in argv:
            return pid
        return None

    def running_pid(self) -> int | None:
        pid = self._pid_from_file()
        if pid is None:
            return None
        argv = command_line(pid)
        return pid if argv[argv.index("-C") + 1] == str(self.control_port) else None

    def tgtadm(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_which("tgtadm"), "--lld", "iscsi", "-C", str(self.control_port), *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )

    def start(self, timeout: float = 10.0) -> str:
        """Start tgtd unless it runs (detached: it outlives `kubenova dev up`); its portal."""
        if os.geteuid() != 0:
            raise ControlPlaneError("tgtd needs root (it serves iSCSI and owns /var/run/tgtd)")
        _which("tgtadm")
        if self.running_pid() is not None:
            return self.portal
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "ports").write_text(f"{self.control_port} {self.portal_port}\n")
        self._remove_sockets()  # a SIGKILLed tgtd of ours leaves them behind
        process = launch(self.spec, detached=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ControlPlaneError(f"tgtd exited at once:\n{log_tail(self.spec.log)}")
            if self.tgtadm("--op", "show", "--mode", "sys").returncode == 0:
                with (
                    contextlib.suppress(OSError),
                    socket.create_connection((self.portal_host, self.portal_port), timeout=0.5),
                ):
                    return self.portal
            time.sleep(0.05)
        raise ControlPlaneError(f"tgtd not ready after {timeout:.0f} s:\n{log_tail(self.spec.log)}")

    def target_names(self) -> list[str]:
        out = self.tgtadm("--op", "show", "--mode", "target").stdout
        return [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("Target ")]

    def stop(self) -> bool:
        """Delete every target and stop tgtd; True if it was running."""
        pid = self.running_pid()
        if pid is None:
            self._remove_sockets()
            return False
        for line in self.tgtadm("--op", "show", "--mode", "target").stdout.splitlines():
            if line.startswith("Target "):
                tid = line.split()[1].rstrip(":")
                self.tgtadm("--op", "delete", "--mode", "target", "--tid", tid, "--force")
        self.tgtadm("--op", "delete", "--mode", "system")
        deadline = time.monotonic() + 5
        while command_line(pid) and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        if command_line(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            stop_pid(pid, timeout=5)
        self.spec.pid_file.unlink(missing_ok=True)
        self._remove_sockets()
        return True

    def _remove_sockets(self) -> None:
        for suffix in ("", ".lock"):
            (SOCKET_DIR / f"socket.{self.control_port}{suffix}").unlink(missing_ok=True)
