"""Install the chart's admission policies (charts/kubenova/policies/) into a local plane.

The same static files the Helm chart ships, so the dev cloud and the tests run under the
rules a real installation has. ValidatingAdmissionPolicies are enforced by the apiserver
itself: nothing of ours has to run for them to hold.
"""

from __future__ import annotations

from pathlib import Path

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.crds import apply_manifests

POLICY_DIR = Path("charts") / "kubenova" / "policies"


def install_policies(access: ClusterAccess, directory: Path) -> list[str]:
    """Server-side apply every policy manifest in `directory`; return the applied names.

    A policy holds a moment after it is stored (the apiserver loads it through an
    informer): a test that probes one waits for the refusal it expects.
    """
    return apply_manifests(access, directory)
