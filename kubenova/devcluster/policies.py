"""Install the chart's admission policies (charts/kubenova/policies/) into a local plane.

The same static files the Helm chart ships, so the dev cloud and the tests run under the
rules a real installation has. ValidatingAdmissionPolicies are enforced by the apiserver
itself: nothing of ours has to run for them to hold.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.crds import FIELD_MANAGER, crd_manifests
from kubenova.devcluster.errors import ControlPlaneError

POLICY_DIR = Path("charts") / "kubenova" / "policies"


def install_policies(access: ClusterAccess, directory: Path, *, timeout: float = 30.0) -> list[str]:
    """Server-side apply every policy manifest in `directory`; return the applied names.

    Waits until the apiserver lists every binding: a policy starts to hold a moment after
    that (its informer), so tests that probe it still wait for the refusal they expect.
    """
    manifests = crd_manifests(directory)
    if not manifests:
        return []
    files = [arg for path in manifests for arg in ("-f", str(path))]
    applied = access.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-o",
        "name",
        *files,
    )
    names = applied.stdout.split()
    deadline = time.monotonic() + timeout
    while True:
        listed = json.loads(access.kubectl("get", *names, "-o", "json").stdout)
        if len(listed["items"]) == len(names):
            return names
        if time.monotonic() > deadline:
            raise ControlPlaneError(f"admission policies not served after {timeout:.0f} s")
        time.sleep(0.1)
