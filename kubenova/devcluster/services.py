"""The kubenova services `kubenova dev up` runs beside the control plane on this machine.

One of each, detached, with pid files and logs under the dev state directory:
MinIO (the image store), a private libvirtd (QEMU, TCG unless told otherwise), a private
tgtd (the iSCSI target of the volume service), the operator (SQLite inventory in the state
dir) and one host agent named after this machine, running compute, network and volume,
under its own identity (kubenova:agent:<host>), as confined as a real host's agent.
`up` keeps what is running and starts what is not; `down` stops them in reverse order.
A new kubenova server joins by adding its ProcessSpec to `_processes` (and its name to
PROCESSES, in start order).
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.agent_identity import AGENT_RULES, agent_kubeconfig, install_agent_rbac
from kubenova.devcluster.binaries import find_checkout
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.objectstore import start_dev_objectstore, stop_dev_objectstore
from kubenova.devcluster.processes import (
    ProcessSpec,
    launch,
    live_pid,
    log_tail,
    stop_recorded,
)
from kubenova.devcluster.tgtd import PrivateTgtd

Progress = Callable[[str], None]
# kubenova's own processes, in start order (`down` stops them in reverse).
PROCESSES = ("operator", "agent")


@dataclass(frozen=True)
class ServiceState:
    name: str
    pid: int | None
    detail: str


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise ControlPlaneError(
            f"{name} is not installed beside {sys.executable}: pip install -e ."
        )
    return str(path)


class LocalServices:
    """kubenova's own processes for the dev cloud, in `state_dir`."""

    def __init__(self, state_dir: Path) -> None:
        self.root = state_dir
        self.host_name = os.environ.get("KUBENOVA_DEV_HOST", socket.gethostname().split(".")[0])
        self.domain_type = os.environ.get("KUBENOVA_DOMAIN_TYPE", "qemu")
        self.services = os.environ.get("KUBENOVA_DEV_SERVICES", "compute,network,volume")
        self.libvirtd = PrivateLibvirtd(state_dir / "libvirtd")
        self.tgtd = PrivateTgtd(state_dir / "tgtd")

    @property
    def exports_volumes(self) -> bool:
        return "volume" in self.services.split(",")

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'inventory.db'}"

    def _spec(self, name: str, argv: list[str]) -> ProcessSpec:
        return ProcessSpec(
            name, tuple(argv), self.root / "logs" / f"{name}.log", self.root / f"{name}.pid"
        )

    def _operator(self, access: ClusterAccess) -> ProcessSpec:
        return self._spec(
            "operator",
            [
                _script("kubenova-operator"),
                f"--kubeconfig={access.kubeconfig}",
                f"--database-url={self.database_url}",
                "--metrics-host=127.0.0.1",
                "--metrics-port=0",
                "--webhook-port=0",  # the admission webhook, on a free loopback port
            ],
        )

    def _agent_kubeconfig(self, access: ClusterAccess, progress: Progress) -> Path:
        """The agent's own identity (user kubenova:agent:<host>, the chart's agent rules),
        so the dev cloud runs under the policies that confine a host to its own objects."""
        checkout = find_checkout()
        if checkout is None:
            progress(f"agent: no source checkout holding {AGENT_RULES}; it runs as the admin")
            return access.kubeconfig
        install_agent_rbac(access, checkout / AGENT_RULES)
        return agent_kubeconfig(access, self.host_name)

    def _agent(self, kubeconfig: Path) -> ProcessSpec:
        volume = (
            [f"--tgt-control-port={self.tgtd.control_port}", f"--iscsi-portal={self.tgtd.portal}"]
            if self.exports_volumes
            else []
        )
        return self._spec(
            "agent",
            [
                _script("kubenova-agent"),
                f"--host-name={self.host_name}",
                f"--libvirt-uri={self.libvirtd.uri}",
                f"--state-dir={self.root / 'agent'}",
                f"--kubeconfig={kubeconfig}",
                f"--domain-type={self.domain_type}",
                f"--services={self.services}",
                "--underlay-ip=127.0.0.1",
                "--network-teardown-on-exit",
                "--metrics-port=0",
                *volume,
            ],
        )

    def _processes(self, access: ClusterAccess, progress: Progress) -> list[ProcessSpec]:
        """kubenova's own servers, in the order of PROCESSES."""
        return [
            self._operator(access),
            self._agent(self._agent_kubeconfig(access, progress)),
        ]

    def up(
        self,
        access: ClusterAccess,
        progress: Progress,
        *,
        migrate: Callable[[str], None],
    ) -> None:
        """Start what is not running, after `migrate(database_url)` updated the inventory.

        The CLI passes the operator's migration in: shared code never imports the operator.
        """
        progress("object store (MinIO)")
        store = start_dev_objectstore(self.root, progress)
        progress(f"libvirtd ({self.libvirtd.uri})")
        self.libvirtd.start(detached=True)
        if self.exports_volumes:
            progress(
                f"tgtd (iSCSI portal {self.tgtd.start()}, control port {self.tgtd.control_port})"
            )
        migrate(self.database_url)
        os.environ.update(store.env())  # the agent reads its default image store from env
        for spec in self._processes(access, progress):
            if live_pid(spec) is not None:
                progress(f"{spec.name}: running")
                continue
            progress(f"{spec.name}: starting (log {spec.log})")
            process = launch(spec, detached=True)
            if process.poll() is not None:
                raise ControlPlaneError(f"{spec.name} exited at once:\n{log_tail(spec.log)}")

    def down(self) -> list[str]:
        stopped = []
        for name in reversed(PROCESSES):
            if stop_recorded(self._spec(name, []), timeout=20):
                stopped.append(name)
        if self.libvirtd.running_pid() is not None:
            self.libvirtd.stop()  # destroys the guests first: tgtd must outlive their sessions
            stopped.append("libvirtd")
        if self.tgtd.stop():
            stopped.append("tgtd")
        stopped += stop_dev_objectstore(self.root)
        return stopped

    def status(self) -> list[ServiceState]:
        states = []
        for name in PROCESSES:
            spec = self._spec(name, [])
            states.append(ServiceState(name, live_pid(spec), str(spec.log)))
        states.append(ServiceState("libvirtd", self.libvirtd.running_pid(), self.libvirtd.uri))
        if self.exports_volumes:
            states.append(ServiceState("tgtd", self.tgtd.running_pid(), self.tgtd.portal))
        return states
