"""etcd + kube-apiserver on loopback, for pytest (attached) or `kubenova dev` (detached).

Everything lives in one state directory: `pki/`, `etcd/` (data), `logs/`, `run/` (pid
files), `state.json` (ports, kept stable across restarts) and `admin.kubeconfig`.
`up()` is level-triggered: a component already running with the wanted command line and
healthy is kept, anything else is (re)started.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.binaries import Binaries, ensure_binaries, find_binaries
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.kubeconfig import write_kubeconfig
from kubenova.devcluster.pki import ADMIN_USER, ControlPlanePKI
from kubenova.devcluster.probes import apiserver_ready, etcd_healthy, wait_ready
from kubenova.devcluster.processes import (
    ProcessSpec,
    command_line,
    launch,
    processes_mentioning,
    recorded_pid,
    runs_with,
    stop_pid,
)

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
ETCD_READY_TIMEOUT = 15.0
APISERVER_READY_TIMEOUT = 90.0
Progress = Callable[[str], None]
# In stop order: the apiserver first, so it never runs without its store.
COMPONENTS = ("kube-apiserver", "etcd")


def default_state_dir() -> Path:
    """$KUBENOVA_DEV_DIR, else $XDG_DATA_HOME/kubenova/dev (~/.local/share/kubenova/dev)."""
    if explicit := os.environ.get("KUBENOVA_DEV_DIR"):
        return Path(explicit)
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home) / "kubenova" / "dev"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the Go servers do: connections in TIME_WAIT after a kill must not count
        # as "taken", only another listener does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _port_freed(port: int, wait: float = 20.0) -> bool:
    """Is `port` free, or free within `wait` seconds?

    A killed apiserver's accepted connections stay half-closed until its clients (the dev
    operator and agent keep pooled connections) notice and close their ends; moving the
    URL for that would break every kubeconfig handed out.
    """
    deadline = time.monotonic() + wait
    while not _port_free(port):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


@dataclass
class Ports:
    """The loopback ports of one plane; persisted so `up` after `down` keeps its URL."""

    etcd_client: int
    etcd_peer: int
    apiserver: int


@dataclass(frozen=True)
class ComponentStatus:
    """What `status` reports for one process."""

    name: str
    pid: int | None
    healthy: bool
    endpoint: str


class ControlPlane:
    """A local etcd + kube-apiserver rooted at one state directory."""

    def __init__(
        self, root: Path, *, detached: bool = False, binaries: Binaries | None = None
    ) -> None:
        self.root = root.resolve()
        self.detached = detached
        self.pki = ControlPlanePKI(self.root / "pki")
        self._binaries = binaries
        self._children: dict[str, subprocess.Popen[bytes]] = {}

    # -- paths and configuration ------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def _state_file(self) -> Path:
        return self.root / "state.json"

    def _load_ports(self) -> Ports | None:
        try:
            return Ports(**json.loads(self._state_file.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def _save_ports(self, ports: Ports) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(ports), indent=2) + "\n")
        tmp.replace(self._state_file)

    def _spec(self, name: str, argv: list[str]) -> ProcessSpec:
        return ProcessSpec(
            name, tuple(argv), self.root / "logs" / f"{name}.log", self.root / "run" / f"{name}.pid"
        )

    def _etcd_spec(self, binaries: Binaries, ports: Ports) -> ProcessSpec:
        client = f"http://127.0.0.1:{ports.etcd_client}"
        peer = f"http://127.0.0.1:{ports.etcd_peer}"
        return self._spec(
            "etcd",
            [
                str(binaries.etcd),
                "--name=kubenova-dev",
                f"--data-dir={self.root / 'etcd'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=kubenova-dev={peer}",
                # A throwaway store: durability traded for a start in tens of milliseconds.
                "--unsafe-no-fsync",
                "--heartbeat-interval=10",
                "--election-timeout=100",
                "--log-level=warn",
            ],
        )

    def _apiserver_spec(self, binaries: Binaries, ports: Ports) -> ProcessSpec:
        pki = self.pki
        return self._spec(
            "kube-apiserver",
            [
                str(binaries.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={ports.apiserver}",
                f"--tls-cert-file={pki.serving.cert}",
                f"--tls-private-key-file={pki.serving.key}",
                f"--client-ca-file={pki.client_ca}",
                f"--token-auth-file={pki.token_file}",
                "--authorization-mode=Node,RBAC",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki.service_account.cert}",
                f"--service-account-signing-key-file={pki.service_account.key}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                # No nodes and no kubelets: a loopback advertise address would be refused in
                # the `kubernetes` Endpoints, so nothing reconciles them.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                # As kubeadm and kind do: the agent DaemonSet is privileged (chart tests).
                "--allow-privileged=true",
            ],
        )

    # -- lifecycle -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `kubenova dev up` at once must not start two etcds on one data dir.
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    def _ports(self, running: set[str]) -> Ports:
        ports = self._load_ports()
        if ports is None:
            ports = Ports(_free_port(), _free_port(), _free_port())
        else:
            # A stopped component's port may have been taken meanwhile; move it then.
            if "etcd" not in running:
                if not _port_free(ports.etcd_client):
                    ports.etcd_client = _free_port()
                if not _port_free(ports.etcd_peer):
                    ports.etcd_peer = _free_port()
            if "kube-apiserver" not in running and not _port_freed(ports.apiserver):
                ports.apiserver = _free_port()
        self._save_ports(ports)
        return ports

    def up(self, progress: Progress = lambda _: None) -> ClusterAccess:
        """Make etcd and kube-apiserver run and be healthy; reuse what already is."""
        with self._locked():
            binaries = self._binaries or ensure_binaries(progress)
            self.pki.ensure()
            stored = self._load_ports()
            running = set()
            if stored is not None:
                for spec in (
                    self._etcd_spec(binaries, stored),
                    self._apiserver_spec(binaries, stored),
                ):
                    if recorded_pid(spec) is not None:
                        running.add(spec.name)
            ports = self._ports(running)
            etcd = self._etcd_spec(binaries, ports)
            apiserver = self._apiserver_spec(binaries, ports)
            token = self.pki.admin_token()
            self._ensure(
                etcd, lambda: etcd_healthy(ports.etcd_client), ETCD_READY_TIMEOUT, progress
            )
            self._ensure(
                apiserver,
                lambda: apiserver_ready(ports.apiserver, self.pki.serving_ca, token),
                APISERVER_READY_TIMEOUT,
                progress,
            )
            write_kubeconfig(
                self.kubeconfig,
                server=self._url(ports),
                ca_file=self.pki.serving_ca,
                user=ADMIN_USER,
                token=token,
            )
            return self._access(binaries, ports)

    def _ensure(
        self, spec: ProcessSpec, probe: Callable[[], bool], timeout: float, progress: Progress
    ) -> None:
        pid = self._running_pid(spec.name)
        if pid is not None:
            if command_line(pid) == spec.argv and probe():
                return
            # Ours, but unhealthy or configured differently (say etcd moved port).
            progress(f"restarting {spec.name} (pid {pid})")
            stop_pid(pid)
        progress(f"starting {spec.name}")
        process = launch(spec, detached=self.detached)
        if not self.detached:
            self._children[spec.name] = process
        wait_ready(spec, process.pid, probe, timeout)

    def restart(self, name: str, progress: Progress = lambda _: None) -> None:
        """Stop one running component and start it again on its ports and data dir.

        Unlike `up()` the other component is left alone even while it reports unhealthy
        (an apiserver whose etcd is being restarted does): a test plays one part's restart.
        """
        if name not in COMPONENTS:
            raise ControlPlaneError(f"no component {name!r}: one of {', '.join(COMPONENTS)}")
        with self._locked():
            binaries = self._binaries or ensure_binaries(progress)
            ports = self._load_ports()
            if ports is None:
                raise ControlPlaneError(f"no control plane was ever started in {self.root}")
            pid = self._running_pid(name)
            if pid is not None:
                stop_pid(pid)
            child = self._children.pop(name, None)
            if child is not None:
                child.wait()
            if name == "etcd":
                spec, timeout = self._etcd_spec(binaries, ports), ETCD_READY_TIMEOUT
                needed: tuple[int, ...] = (ports.etcd_client, ports.etcd_peer)
            else:
                spec, timeout = self._apiserver_spec(binaries, ports), APISERVER_READY_TIMEOUT
                needed = (ports.apiserver,)
            # Same ports or every kubeconfig and client handed out points nowhere.
            for port in needed:
                if not _port_freed(port):
                    raise ControlPlaneError(f"{name}'s port {port} was not freed for its restart")
            progress(f"starting {name}")
            process = launch(spec, detached=self.detached)
            if not self.detached:
                self._children[name] = process
            wait_ready(spec, process.pid, lambda: self._healthy(name, ports), timeout)

    def _healthy(self, name: str, ports: Ports) -> bool:
        if name == "etcd":
            return etcd_healthy(ports.etcd_client)
        return apiserver_ready(ports.apiserver, self.pki.serving_ca, self.pki.admin_token())

    def down(self, timeout: float = 10.0) -> list[str]:
        """Stop kube-apiserver then etcd (SIGTERM, then SIGKILL); return what was stopped."""
        with self._locked():
            stopped = []
            for name in COMPONENTS:
                pid = self._running_pid(name)
                if pid is not None:
                    stop_pid(pid, timeout=timeout)
                    stopped.append(name)
                (self.root / "run" / f"{name}.pid").unlink(missing_ok=True)
                child = self._children.pop(name, None)
                if child is not None:
                    child.wait()
            # Stragglers whose pid file was lost or overwritten, found by our state dir.
            for pid in processes_mentioning(str(self.root), COMPONENTS):
                name = Path(command_line(pid)[0]).name
                stop_pid(pid, timeout=timeout)
                stopped.append(f"{name} (pid {pid})")
            return stopped

    def _running_pid(self, name: str) -> int | None:
        """The pid recorded for component `name` if it is alive and really ours."""
        pid_file = self.root / "run" / f"{name}.pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if runs_with(pid, str(self.root), (name,)) else None

    def status(self) -> list[ComponentStatus]:
        """Each component's pid (if running) and health; needs no binaries."""
        ports = self._load_ports()
        if ports is None:
            return [
                ComponentStatus(name, None, False, "never started") for name in reversed(COMPONENTS)
            ]
        etcd_pid, apiserver_pid = self._running_pid("etcd"), self._running_pid("kube-apiserver")
        token = self.pki.admin_token() if self.pki.token_file.exists() else ""
        return [
            ComponentStatus(
                "etcd",
                etcd_pid,
                etcd_pid is not None and etcd_healthy(ports.etcd_client),
                f"http://127.0.0.1:{ports.etcd_client}",
            ),
            ComponentStatus(
                "kube-apiserver",
                apiserver_pid,
                apiserver_pid is not None
                and apiserver_ready(ports.apiserver, self.pki.serving_ca, token),
                self._url(ports),
            ),
        ]

    def access(self) -> ClusterAccess:
        """Client access to this plane as last configured (it need not be running)."""
        ports = self._load_ports()
        if ports is None:
            raise ControlPlaneError(f"no control plane was ever started in {self.root}")
        binaries = self._binaries or find_binaries()
        if binaries is None:
            raise ControlPlaneError("kubectl is missing: run `kubenova dev up` first")
        return self._access(binaries, ports)

    def _access(self, binaries: Binaries, ports: Ports) -> ClusterAccess:
        return ClusterAccess(
            url=self._url(ports),
            kubeconfig=self.kubeconfig,
            ca_file=self.pki.serving_ca,
            kubectl_binary=binaries.kubectl,
            pki=self.pki,
        )

    @staticmethod
    def _url(ports: Ports) -> str:
        return f"https://127.0.0.1:{ports.apiserver}"

    def __enter__(self) -> ClusterAccess:
        return self.up()

    def __exit__(self, *exc_info: object) -> None:
        self.down()
