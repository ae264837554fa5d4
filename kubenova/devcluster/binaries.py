"""Locate etcd, kube-apiserver and kubectl; build them with hack/controlplane.sh when absent."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubenova.devcluster.errors import ControlPlaneError

BUILT_COMPONENTS = ("etcd", "kube-apiserver", "kubectl")


def cache_bin_dir() -> Path:
    """Where hack/controlplane.sh caches binaries (same KUBENOVA_CACHE override as the script)."""
    cache = os.environ.get("KUBENOVA_CACHE") or str(Path.home() / ".cache" / "kubenova")
    return Path(cache) / "bin"


def find_checkout() -> Path | None:
    """The kubenova source checkout this package runs from, or None when installed from a wheel."""
    root = Path(__file__).resolve().parents[2]
    if (root / "hack" / "controlplane.sh").is_file() and (root / "pyproject.toml").is_file():
        return root
    return None


@dataclass(frozen=True)
class Binaries:
    """Absolute paths of the control-plane executables."""

    etcd: Path
    kube_apiserver: Path
    kubectl: Path


def _lookup(bin_dir: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for name in BUILT_COMPONENTS:
        candidate = bin_dir / name
        if candidate.exists() and os.access(candidate, os.X_OK):
            found[name] = candidate
    if "kubectl" not in found and (system_kubectl := shutil.which("kubectl")):
        found["kubectl"] = Path(system_kubectl)
    return found


def _binaries(found: dict[str, Path]) -> Binaries:
    return Binaries(
        etcd=found["etcd"], kube_apiserver=found["kube-apiserver"], kubectl=found["kubectl"]
    )


def find_binaries() -> Binaries | None:
    """The cached binaries, or None if any is missing; never builds."""
    found = _lookup(cache_bin_dir())
    return _binaries(found) if all(name in found for name in BUILT_COMPONENTS) else None


def ensure_binaries(progress: Callable[[str], None] = lambda _: None) -> Binaries:
    """Return the cached binaries, running hack/controlplane.sh first for any that is missing."""
    bin_dir = cache_bin_dir()
    found = _lookup(bin_dir)
    missing = [name for name in BUILT_COMPONENTS if name not in found]
    if missing:
        checkout = find_checkout()
        if checkout is None:
            raise ControlPlaneError(
                f"missing {', '.join(missing)} in {bin_dir}. Build them from a kubenova source "
                "checkout with `hack/controlplane.sh etcd kube-apiserver kubectl` (needs Go "
                ">= 1.24 and the Go module proxy), or put the executables there yourself."
            )
        script = checkout / "hack" / "controlplane.sh"
        progress(f"building {', '.join(missing)} with {script} (first time only; minutes)")
        result = subprocess.run([str(script), *missing], check=False)
        if result.returncode != 0:
            raise ControlPlaneError(
                f"{script} {' '.join(missing)} failed with exit code {result.returncode}; "
                "its output above says why"
            )
        found = _lookup(bin_dir)
        still_missing = [name for name in BUILT_COMPONENTS if name not in found]
        if still_missing:
            raise ControlPlaneError(
                f"{script} ran but {', '.join(still_missing)} is still missing from {bin_dir}"
            )
    return _binaries(found)
