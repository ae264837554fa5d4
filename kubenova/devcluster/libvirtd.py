"""A private libvirtd (QEMU driver) for tests and `kubenova dev`, started as root without systemd.

The daemon runs in its own mount namespace (`unshare --mount`) where a state directory of ours
is bind-mounted over /etc/libvirt, /run/libvirt, /var/lib/libvirt, /var/log/libvirt and
/var/cache/libvirt: a system libvirtd, or another private one, is not disturbed and sees none
of our domains. Clients outside the namespace reach it through the socket's real path:
`qemu+unix:///system?socket=<root>/run/libvirt-sock`.

Process tree: [setpriv --pdeathsig] unshare --mount -- python -I this-file --inside <root>
(a PR_SET_CHILD_SUBREAPER wrapper: QEMU processes that libvirtd daemonises are reaped at once,
so `destroy` takes 0.2 s instead of 2 s) -> setpriv --pdeathsig TERM libvirtd.
`crash_and_restart()` kills libvirtd inside the same wrapper and namespace and starts a new one,
so the guests survive it the way they survive a libvirtd restart on a real host.
This file runs as a script inside the namespace, so it imports only the standard library at
module level.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

PR_SET_CHILD_SUBREAPER = 36

# Where the daemon looks (fixed at build time for a privileged libvirtd) -> our subdirectory.
BIND_MOUNTS: tuple[tuple[str, str], ...] = (
    ("etc", "/etc/libvirt"),
    ("run", "/run/libvirt"),
    ("lib", "/var/lib/libvirt"),
    ("log", "/var/log/libvirt"),
    ("cache", "/var/cache/libvirt"),
)

# Sandbox settings (docs/running-the-real-components.md): no cgroups, namespaces or security
# drivers, and QEMU's console/log written to files by QEMU itself, so no virtlogd is needed.
QEMU_CONF = """\
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
namespaces = []
cgroup_controllers = []
stdio_handler = "file"
"""

LIBVIRTD_CONF = """\
unix_sock_dir = "/run/libvirt"
unix_sock_rw_perms = "0700"
unix_sock_ro_perms = "0700"
unix_sock_admin_perms = "0700"
auth_unix_rw = "none"
auth_unix_ro = "none"
log_outputs = "3:file:/var/log/libvirt/libvirtd.log"
"""

WRAPPER_MARK = "--inside"
# Sent to the wrapper: SIGKILL libvirtd and start a new one, leaving the guests running.
RESTART_SIGNAL = signal.SIGUSR1
DOWN_FOR_FILE = "restart-down-for"  # seconds the wrapper waits before it starts libvirtd again


class LibvirtdError(RuntimeError):
    """The private libvirtd could not be started, reached or stopped; the message says why."""


class PrivateLibvirtd:
    """One private libvirtd whose whole state lives under `root`; with `netns`, started in
    that network namespace (`ip netns exec`), so QEMU's taps are made there: a simulated
    host of its own on one machine."""

    def __init__(
        self,
        root: Path,
        netns: str | None = None,
        *,
        host_uuid: str | None = None,
        migration_ports: tuple[int, int] | None = None,
    ) -> None:
        self.root = root.resolve()
        self.netns = netns
        # Two daemons on one machine are two hosts to live migration only with distinct
        # host UUIDs (else "migrate to the same host") and their own incoming port ranges.
        self.host_uuid = host_uuid
        self.migration_ports = migration_ports
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.root / "run" / "libvirt-sock"

    @property
    def uri(self) -> str:
        """The libvirt connection URI of this daemon (works from outside its namespace)."""
        return f"qemu+unix:///system?socket={self.socket_path}"

    @property
    def wrapper_pid_file(self) -> Path:
        return self.root / "wrapper.pid"

    @property
    def log_file(self) -> Path:
        """libvirtd's own log (stdout/stderr of the daemon and the wrapper go to daemon.out)."""
        return self.root / "log" / "libvirtd.log"

    def qemu_log(self, domain_name: str) -> Path:
        """QEMU's stdout/stderr log of one domain (the command line and why it died)."""
        return self.root / "log" / "qemu" / f"{domain_name}.log"

    def start(self, *, detached: bool = False, timeout: float = 30.0) -> str:
        """Start the daemon unless it runs; return its URI once `virsh version` answers."""
        check_prerequisites()
        if self.running_pid() is not None:
            self.wait_ready(timeout)
            return self.uri
        self._write_config()
        argv = [
            _which("unshare"),
            "--mount",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-I",
            str(Path(__file__).resolve()),
            WRAPPER_MARK,
            str(self.root),
        ]
        if self.netns is not None:
            argv = [_which("ip"), "netns", "exec", self.netns, *argv]
        if not detached:
            # If the test session dies without a teardown, the kernel signals the wrapper,
            # which stops libvirtd and kills the QEMUs left behind.
            argv = [_which("setpriv"), "--pdeathsig", "TERM", *argv]
        with (self.root / "daemon.out").open("ab") as out:
            self._process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=detached,
            )
        self.wrapper_pid_file.write_text(f"{self._process.pid}\n")
        self.wait_ready(timeout)
        return self.uri

    def wait_ready(self, timeout: float) -> None:
        """Poll `virsh -c URI version` until it answers; raise with the daemon's log if not."""
        virsh = _which("virsh")
        deadline = time.monotonic() + timeout
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise LibvirtdError(
                    f"libvirtd exited with {self._process.returncode}: {self._tail()}"
                )
            if self.socket_path.exists():
                result = subprocess.run(
                    [virsh, "-c", self.uri, "version"],
                    capture_output=True,
                    text=True,
                    check=False,
                    timeout=30,
                )
                if result.returncode == 0:
                    return
            if time.monotonic() > deadline:
                raise LibvirtdError(f"libvirtd not ready after {timeout:.0f} s: {self._tail()}")
            time.sleep(0.05)

    def running_pid(self) -> int | None:
        """The wrapper's pid if our wrapper (for this root) is alive; never another process."""
        try:
            pid = int(self.wrapper_pid_file.read_text().strip())
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ValueError, ProcessLookupError):
            return None
        argv = [part.decode(errors="replace") for part in raw.split(b"\0")]
        if (
            WRAPPER_MARK in argv
            and str(self.root) in argv
            and Path(__file__).name in " ".join(argv)
        ):
            return pid
        return None

    def stop(self, timeout: float = 15.0) -> None:
        """Destroy every running domain, then stop the daemon and its wrapper."""
        pid = self.running_pid()
        if pid is None:
            return
        with contextlib.suppress(Exception):
            self._destroy_domains()
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, self._process, timeout):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, self._process, 5.0)
        self.wrapper_pid_file.unlink(missing_ok=True)

    def daemon_pid(self) -> int | None:
        """libvirtd's own pid (from its pid file; a crashed daemon's may linger there)."""
        try:
            return int((self.root / "libvirtd.pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def crash_and_restart(self, *, down_for: float = 0.0, timeout: float = 30.0) -> None:
        """`kill -9` libvirtd and start it again `down_for` seconds later; QEMU guests keep
        running through it."""
        wrapper = self.running_pid()
        old = self.daemon_pid()
        if wrapper is None or old is None:
            raise LibvirtdError("libvirtd is not running: nothing to restart")
        (self.root / DOWN_FOR_FILE).write_text(f"{down_for}\n")
        os.kill(wrapper, RESTART_SIGNAL)
        deadline = time.monotonic() + down_for + timeout
        while self.daemon_pid() in (old, None) or Path(f"/proc/{old}").exists():
            if time.monotonic() > deadline:
                raise LibvirtdError(f"libvirtd did not restart in {timeout:.0f} s: {self._tail()}")
            time.sleep(0.05)
        self.wait_ready(max(deadline - time.monotonic(), 1.0))

    def _destroy_domains(self) -> None:
        # QEMU processes outlive libvirtd; left running they would keep our mount namespace
        # and their disks busy. virsh keeps this file free of non-stdlib imports.
        virsh = _which("virsh")
        listed = subprocess.run(
            [virsh, "-c", self.uri, "list", "--name", "--state-running", "--state-paused"],
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        for name in listed.stdout.split():
            subprocess.run(
                [virsh, "-c", self.uri, "destroy", name],
                capture_output=True,
                check=False,
                timeout=30,
            )

    def _write_config(self) -> None:
        for sub, _target in BIND_MOUNTS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        qemu_conf, libvirtd_conf = QEMU_CONF, LIBVIRTD_CONF
        if self.migration_ports is not None:
            low, high = self.migration_ports
            qemu_conf += f"migration_port_min = {low}\nmigration_port_max = {high}\n"
        if self.host_uuid is not None:
            libvirtd_conf += f'host_uuid = "{self.host_uuid}"\n'
        (self.root / "etc" / "qemu.conf").write_text(qemu_conf)
        (self.root / "etc" / "libvirtd.conf").write_text(libvirtd_conf)

    def _tail(self, lines: int = 30) -> str:
        text = ""
        for path in (self.root / "daemon.out", self.log_file):
            with contextlib.suppress(FileNotFoundError):
                text += f"\n--- {path}\n" + "\n".join(path.read_text().splitlines()[-lines:])
        return text or "(no log)"


def check_prerequisites() -> None:
    """Raise LibvirtdError naming what is missing (root, binaries) to run a private libvirtd."""
    if os.geteuid() != 0:
        raise LibvirtdError("a private QEMU libvirtd needs root (it runs a privileged daemon)")
    for tool in ("libvirtd", "virsh", "unshare", "setpriv", "mount", "qemu-system-x86_64"):
        _which(tool)


def _which(tool: str) -> str:
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin:/usr/bin:/bin")
    if path is None:
        raise LibvirtdError(
            f"{tool} not found: install the Debian packages in hack/apt-packages.txt "
            "(hack/install-deps.sh)"
        )
    return path


def _wait_gone(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None:
            if process.poll() is not None:
                return True
        elif not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.05)
    return False


def _run_wrapper(root: Path) -> int:
    """Inside the new mount namespace: bind our dirs, become a subreaper, run libvirtd."""
    for sub, target in BIND_MOUNTS:
        Path(target).mkdir(parents=True, exist_ok=True)
        subprocess.run([_which("mount"), "--bind", str(root / sub), target], check=True)
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        print("libvirtd wrapper: prctl(PR_SET_CHILD_SUBREAPER) failed", file=sys.stderr)
    argv = [
        _which("setpriv"),
        "--pdeathsig",
        "TERM",
        _which("libvirtd"),
        "--config",
        "/etc/libvirt/libvirtd.conf",
        "--pid-file",
        str(root / "libvirtd.pid"),
    ]
    daemon = [subprocess.Popen(argv, stdin=subprocess.DEVNULL)]
    restarting = [False]

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon[0].pid, signum)

    def crash(_signum: int, _frame: object) -> None:
        restarting[0] = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(daemon[0].pid, signal.SIGKILL)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, forward)
    signal.signal(RESTART_SIGNAL, crash)
    # Reap everything: libvirtd itself and the QEMUs it daemonised (orphans come to us).
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            return 1
        if pid != daemon[0].pid:
            continue
        if restarting[0]:
            # A crashed libvirtd, as on a real host: its guests run on and the new daemon
            # finds them again (same namespace, same state directories).
            restarting[0] = False
            with contextlib.suppress(OSError, ValueError):
                time.sleep(float((root / DOWN_FOR_FILE).read_text()))
            daemon[0] = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
            continue
        _kill_children()
        return os.waitstatus_to_exitcode(status)


def _kill_children() -> None:
    # libvirtd is gone: QEMUs still here were left by a caller that did not stop them
    # (a crashed test session). Do not let them outlive the sandbox.
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if stat.read_text().rsplit(")", 1)[1].split()[1] == me:
                os.kill(int(stat.parent.name), signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while os.wait()[0] > 0:
            pass


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == WRAPPER_MARK:
    sys.exit(_run_wrapper(Path(sys.argv[2])))
