"""Install the chart's admission policies and public catalog rights into a local plane.

The same static files the Helm chart ships (charts/kubenova/policies/, rbac/catalog.yaml),
so the dev cloud and the tests run under the rules a real installation has.
ValidatingAdmissionPolicies are enforced by the apiserver itself: nothing of ours has to
run for them to hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from kubenova.devcluster.access import ClusterAccess
from kubenova.devcluster.crds import apply_manifests, apply_objects
from kubenova.devcluster.errors import ControlPlaneError

POLICY_DIR = Path("charts") / "kubenova" / "policies"
CATALOG_RULES = Path("charts") / "kubenova" / "rbac" / "catalog.yaml"
# Not the chart's name (kubenova-catalog-reader): a Helm release in the same plane must
# not find objects it does not own.
CATALOG_ROLE = "kubenova-dev-catalog-reader"


def install_policies(access: ClusterAccess, directory: Path) -> list[str]:
    """Server-side apply every policy manifest in `directory`; return the applied names.

    A policy holds a moment after it is stored (the apiserver loads it through an
    informer): a test that probes one waits for the refusal it expects.
    """
    return apply_manifests(access, directory)


def catalog_rbac(rules_file: Path) -> list[dict[str, Any]]:
    """A ClusterRole with the chart's public catalog rules, bound to system:authenticated."""
    try:
        rules = yaml.safe_load(rules_file.read_text())["rules"]
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise ControlPlaneError(
            f"{rules_file}: expected the catalog's RBAC rules under the key rules ({exc})"
        ) from exc
    rbac = "rbac.authorization.k8s.io"
    return [
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRole",
            "metadata": {"name": CATALOG_ROLE},
            "rules": rules,
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": CATALOG_ROLE},
            "roleRef": {"apiGroup": rbac, "kind": "ClusterRole", "name": CATALOG_ROLE},
            "subjects": [{"apiGroup": rbac, "kind": "Group", "name": "system:authenticated"}],
        },
    ]


def install_catalog_rbac(access: ClusterAccess, rules_file: Path) -> None:
    """Let every authenticated user read Flavors and Images, as the chart does (idempotent)."""
    apply_objects(access, catalog_rbac(rules_file))
