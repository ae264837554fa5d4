"""A local Kubernetes control plane (etcd + kube-apiserver) for tests and `kubenova dev`."""

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.binaries import Binaries, ensure_binaries, find_binaries, find_checkout
from kubenova.devcluster.controlplane import (
    ComponentStatus,
    ControlPlane,
    default_state_dir,
)
from kubenova.devcluster.crds import install_crds
from kubenova.devcluster.errors import ControlPlaneError, KubectlError
from kubenova.devcluster.policies import POLICY_DIR, install_policies

__all__ = [
    "POLICY_DIR",
    "Binaries",
    "ClusterAccess",
    "ComponentStatus",
    "ControlPlane",
    "ControlPlaneError",
    "KubectlError",
    "default_state_dir",
    "ensure_binaries",
    "find_binaries",
    "find_checkout",
    "install_crds",
    "install_policies",
]
