"""A throwaway local cloud for benchmarks: control plane, operator and agent processes.

Everything runs on this machine as real processes (etcd, kube-apiserver, kubenova-operator,
kubenova-agent), so figures include every hop a user's request takes.
"""

from __future__ import annotations

import compileall
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import kubenova
from kubenova.devcluster import (
    POLICY_DIR,
    ClusterAccess,
    ControlPlane,
    ensure_binaries,
    install_crds,
    install_policies,
)
from kubenova.operator import inventory as inv

REPO = Path(__file__).resolve().parents[1]


def _script(name: str) -> str:
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise SystemExit(f"{name} is not installed beside {sys.executable}: pip install -e .")
    return str(path)


@dataclass
class Cloud:
    root: Path
    access: ClusterAccess
    database_url: str
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    operator_log: str = ""  # the stopped operator's log, kept by operator_writes()

    def log(self, name: str) -> Path:
        return self.root / f"{name}.log"

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        with self.log(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**{k: v for k, v in os.environ.items() if k != "KUBECONFIG"}, **(env or {})},
            )

    def start_operator(self, *extra: str) -> None:
        self.start(
            "operator",
            [
                _script("kubenova-operator"),
                f"--kubeconfig={self.access.kubeconfig}",
                f"--database-url={self.database_url}",
                "--metrics-port=0",
                *extra,
            ],
        )

    def start_operator_as_shipped(self, *extra: str) -> None:
        """The operator with its admission webhook, as the chart and `kubenova dev` run it
        (its mutation puts the finalizers on at creation: no separate write for them),
        once the webhook answers."""
        self.start_operator("--webhook-port=0", *extra)
        wait_webhook(self.access)

    def start_agent(
        self,
        host: str,
        *,
        capacity: str,
        libvirt_uri: str | None = None,
        env: dict[str, str] | None = None,
        extra: tuple[str, ...] = (),
    ) -> Path:
        state = self.root / "agents" / host
        state.mkdir(parents=True, exist_ok=True)
        uri = libvirt_uri or f"test://{state / 'node.xml'}"
        self.start(
            f"agent-{host}",
            [
                _script("kubenova-agent"),
                f"--host-name={host}",
                f"--libvirt-uri={uri}",
                f"--state-dir={state}",
                f"--kubeconfig={self.access.kubeconfig}",
                f"--capacity={capacity}",
                "--domain-type=qemu",
                "--metrics-port=0",
                "--log-level=WARNING",
                *extra,
            ],
            env,
        )
        return state

    def stop(self, name: str) -> str:
        """SIGTERM one process, wait, and return its log."""
        process = self.processes.pop(name)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        return self.log(name).read_text(errors="replace")

    def operator_writes(self) -> dict[str, int]:
        """Stop the operator and read the write counts it logs on the way out."""
        text = self.operator_log = self.stop("operator")
        found = re.findall(r"api writes: (\{.*\})", text)
        return json.loads(found[-1]) if found else {}

    def operator_connections(self) -> int:
        """Connections to the apiserver the stopped operator's clients opened (they log it)."""
        return sum(int(n) for n in re.findall(r"api connections opened: (\d+)", self.operator_log))


def wait_webhook(access: ClusterAccess, timeout: float = 60.0) -> None:
    """Until a server-side dry run of a Volume comes back with the finalizers the
    operator's mutating webhook adds."""
    probe = json.dumps(
        {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Volume",
            "metadata": {"name": "webhook-probe", "namespace": "default"},
            "spec": {"sizeGiB": 1},
        }
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = access.kubectl(
            *("create", "--dry-run=server", "-o", "jsonpath={.metadata.finalizers}", "-f", "-"),
            input=probe,
            check=False,
        )
        if result.returncode == 0 and "kubenova.io/" in result.stdout:
            return
        time.sleep(0.2)
    raise SystemExit("the operator's admission webhook never answered")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a live process has used so far (/proc/PID/stat)."""
    # The command name (field 2) may hold spaces: count fields after its closing paren.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def control_plane_cpu(plane_root: Path) -> float:
    """CPU seconds so far of the kube-apiserver and etcd of the ControlPlane at `plane_root`."""
    return sum(
        cpu_seconds(int((plane_root / "run" / f"{name}.pid").read_text().strip()))
        for name in ("kube-apiserver", "etcd")
    )


@contextmanager
def local_cloud() -> Iterator[Cloud]:
    """Control plane with the CRDs and the chart's admission policies installed (the cloud
    as shipped: the Instance's spec rules are a policy) and a fresh SQLite inventory; torn
    down after."""
    # Byte-compiled as `pip install .` does for the image: from an editable checkout with
    # PYTHONDONTWRITEBYTECODE set, each operator and agent start compiled every module of
    # ours first (~0.15 s of the start-up the benchmarks time) — which no deployment pays.
    package = Path(kubenova.__file__).parent
    # compileall does not follow symbolic links: `operator` and `agents` are two.
    for folder in (package, *(p for p in package.iterdir() if p.is_symlink() and p.is_dir())):
        compileall.compile_dir(folder, quiet=1)
    root = Path(tempfile.mkdtemp(prefix="kubenova-bench-"))
    plane = ControlPlane(root / "plane", binaries=ensure_binaries())
    access = plane.up()
    install_crds(access, REPO / "crds")
    install_policies(access, REPO / POLICY_DIR)
    url = f"sqlite:///{root / 'inventory.db'}"
    inv.upgrade(url)
    cloud = Cloud(root, access, url)
    try:
        yield cloud
    finally:
        for name in list(cloud.processes):
            cloud.stop(name)
        plane.down()
        shutil.rmtree(root, ignore_errors=True)
