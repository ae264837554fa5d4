"""Health probes of etcd and kube-apiserver, and a wait loop that notices a dead process."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from collections.abc import Callable
from pathlib import Path

from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.processes import ProcessSpec, is_alive, log_tail

_PROBE_TIMEOUT = 2.0
_POLL_INTERVAL = 0.05


def etcd_healthy(port: int) -> bool:
    """True when etcd's GET /health says {"health":"true"}."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=_PROBE_TIMEOUT)
    try:
        connection.request("GET", "/health")
        response = connection.getresponse()
        body = response.read()
        return response.status == 200 and json.loads(body).get("health") == "true"
    except (OSError, ValueError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def apiserver_ready(port: int, ca_file: Path, token: str) -> bool:
    """True when kube-apiserver's /readyz answers 200 to the admin."""
    context = ssl.create_default_context(cafile=str(ca_file))
    connection = http.client.HTTPSConnection(
        "127.0.0.1", port, timeout=_PROBE_TIMEOUT, context=context
    )
    try:
        # The admin token, because anonymous /readyz is forbidden until RBAC is bootstrapped.
        connection.request("GET", "/readyz", headers={"Authorization": f"Bearer {token}"})
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def wait_ready(spec: ProcessSpec, pid: int, probe: Callable[[], bool], timeout: float) -> None:
    """Poll `probe` until it passes; fail early, with the log tail, if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        if not is_alive(pid):
            raise ControlPlaneError(
                f"{spec.name} exited during start-up; last lines of {spec.log}:\n"
                f"{log_tail(spec.log)}"
            )
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"{spec.name} (pid {pid}) not ready after {timeout:.0f} s; last lines of "
                f"{spec.log}:\n{log_tail(spec.log)}"
            )
        time.sleep(_POLL_INTERVAL)
