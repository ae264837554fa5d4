"""The dashboard of `kubenova dev up`: a detached `kubenova dashboard` on the dev cloud.

It runs under its own client-certificate identity (user kubenova-dashboard) bound to the
same impersonation-only ClusterRole the chart gives its ServiceAccount (`rbac`).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from kubenova.dashboard import rbac
from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.processes import (
    ProcessSpec,
    launch,
    live_pid,
    log_tail,
    stop_recorded,
)

IDENTITY = "kubenova-dashboard"
PORT_ENV = "KUBENOVA_DASHBOARD_PORT"  # a fixed port; default: a free one, kept in dashboard.url


def _spec(state_dir: Path, argv: list[str]) -> ProcessSpec:
    return ProcessSpec(
        "dashboard", tuple(argv), state_dir / "logs" / "dashboard.log", state_dir / "dashboard.pid"
    )


def start(
    access: ClusterAccess, state_dir: Path, database_url: str, progress: Callable[[str], None]
) -> str:
    """Start the dashboard unless it runs already; its URL."""
    url_file = state_dir / "dashboard.url"
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": IDENTITY}
    access.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"kind": "List", "apiVersion": "v1", "items": rbac.manifests(subject)}),
    )
    spec = _spec(state_dir, [])
    if live_pid(spec) is not None and url_file.exists():
        progress("dashboard: running")
        return url_file.read_text().strip()
    port = int(os.environ.get(PORT_ENV) or _free_port())
    url = f"http://127.0.0.1:{port}/"
    kubeconfig = access.user_kubeconfig(IDENTITY)
    argv = [
        sys.executable,
        "-m",
        "kubenova.cli",
        "dashboard",
        f"--kubeconfig={kubeconfig}",
        f"--url={database_url}",
        f"--port={port}",
    ]
    spec = _spec(state_dir, argv)
    url_file.write_text(url + "\n")
    progress(f"dashboard: starting (log {spec.log})")
    process = launch(spec, detached=True)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ControlPlaneError(f"dashboard exited at once:\n{log_tail(spec.log)}")
        try:
            with urllib.request.urlopen(f"{url}healthz", timeout=1):
                return url
        except OSError:
            time.sleep(0.2)
    raise ControlPlaneError(f"dashboard not answering on {url}:\n{log_tail(spec.log)}")


def _free_port() -> int:
    # Several dev clouds (and test sessions) share a machine: no fixed port.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def stop(state_dir: Path) -> list[str]:
    return ["dashboard"] if stop_recorded(_spec(state_dir, [])) else []
