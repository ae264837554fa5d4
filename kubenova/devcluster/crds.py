"""Install CustomResourceDefinitions into the local control plane and wait until they serve."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.kube.meta import name_of

FIELD_MANAGER = "kubenova-dev"


def crd_manifests(directory: Path) -> list[Path]:
    """The YAML files in `directory`, sorted."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml"))


def install_crds(access: ClusterAccess, directory: Path, *, timeout: float = 60.0) -> list[str]:
    """Server-side apply every manifest in `directory`, wait for Established, return the names.

    Returns [] when the directory holds no manifests; callers decide if that is an error.
    """
    names = apply_manifests(access, directory)
    if names:
        _wait_established(access, names, timeout)
    return names


def apply_manifests(access: ClusterAccess, directory: Path) -> list[str]:
    """Server-side apply every YAML file in `directory` as kubenova-dev; the applied names."""
    manifests = crd_manifests(directory)
    if not manifests:
        return []
    files = [arg for path in manifests for arg in ("-f", str(path))]
    # --force-conflicts: the dev plane's objects are ours to overwrite on every `up`.
    applied = access.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-o",
        "name",
        *files,
    )
    return applied.stdout.split()


def apply_objects(access: ClusterAccess, objects: list[dict[str, Any]]) -> None:
    """Server-side apply `objects` (one List) as kubenova-dev, overwriting what differs."""
    documents = {"apiVersion": "v1", "kind": "List", "items": objects}
    access.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={FIELD_MANAGER}",
        "-f",
        "-",
        input=json.dumps(documents),
    )


def _not_established(access: ClusterAccess, names: list[str]) -> list[str]:
    listed = json.loads(access.kubectl("get", *names, "-o", "json").stdout)
    return [
        f"customresourcedefinition.apiextensions.k8s.io/{name_of(item)}"
        for item in listed["items"]
        if not any(
            condition["type"] == "Established" and condition["status"] == "True"
            for condition in item.get("status", {}).get("conditions", [])
        )
    ]


def _wait_established(access: ClusterAccess, names: list[str], timeout: float) -> None:
    # Polled rather than `kubectl wait`, which spends a second even when all are ready.
    deadline = time.monotonic() + timeout
    while pending := _not_established(access, names):
        if time.monotonic() > deadline:
            raise ControlPlaneError(
                f"CRDs not Established after {timeout:.0f} s: {', '.join(pending)}; "
                "`kubectl describe` them for the NamesAccepted condition"
            )
        time.sleep(0.1)
