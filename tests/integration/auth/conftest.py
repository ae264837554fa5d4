"""The operator with its admission webhook and the LDAP auth backend, against the real apiserver.

`tenancy` starts `kubenova-operator --webhook-port 0 --auth-config <slapd's>
--project-sync-interval 1`, waits until the ValidatingWebhookConfiguration is published
and answering, and on the way out deletes what the test made (Projects are finalised by
the operator itself) and the configuration, so later tests meet no webhook.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from tests.builders import a_flavor, a_project, an_image, as_yaml
from tests.fixtures.ldap import Slapd
from tests.fixtures.operator import OperatorProcess, clean_slate
from tests.fixtures.webhook import serving_webhook
from tests.support.waiting import eventually

FLOATING_POOL = "198.51.100.16/28"


def kubectl_json(cluster: ClusterAccess, *args: str) -> Any:
    result = cluster.kubectl(*args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def apply(cluster: ClusterAccess, *docs: dict[str, Any], check: bool = True) -> Any:
    return cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs), check=check)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _delete_everything_made(cluster: ClusterAccess, projects: list[str]) -> None:
    for project in projects:
        body = kubectl_json(cluster, "get", "project", project)
        if body is None:
            continue
        namespace = (body.get("status") or {}).get("namespace") or project

        # Asked again until the Project is gone: an Instance still being handed over gets
        # its finalizers from the operator after they were stripped, and the webhook
        # refuses to delete a Project while it still sees Instances or Volumes.
        def gone(p: str = project, namespace: str = namespace) -> bool:
            _strip_and_delete(cluster, namespace)
            cluster.kubectl("delete", "project", p, "--wait=false", check=False)
            return kubectl_json(cluster, "get", "project", p) is None

        eventually(gone, timeout=30, interval=0.5, what=f"project {project} finalised")


def _strip_and_delete(cluster: ClusterAccess, namespace: str) -> None:
    for kind in ("instances", "volumes"):
        listing = kubectl_json(cluster, "get", kind, "-n", namespace) or {"items": []}
        for item in listing["items"]:
            cluster.kubectl(
                "patch", kind, item["metadata"]["name"], "-n", namespace, "--type=merge",
                "-p", '{"metadata":{"finalizers":null}}', check=False,
            )  # fmt: skip
        if listing["items"]:
            cluster.kubectl("delete", kind, "--all", "-n", namespace, "--wait=false", check=False)


@dataclass
class Tenancy:
    """The cluster, the operator serving the webhook, the directory, and what to clean up."""

    cluster: ClusterAccess
    operator: OperatorProcess
    slapd: Slapd
    projects: list[str] = field(default_factory=list)

    def project(self, name: str, **spec: Any) -> dict[str, Any]:
        """Apply a Project and wait until the operator says it is Ready; its body."""
        self.projects.append(name)
        apply(self.cluster, a_project(name, **spec))

        def ready() -> dict[str, Any] | None:
            body = kubectl_json(self.cluster, "get", "project", name)
            conditions = ((body or {}).get("status") or {}).get("conditions", [])
            return (
                body
                if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
                else None
            )

        return eventually(ready, timeout=30, what=f"project {name} Ready")


@pytest.fixture
def tenancy(
    apiserver: ClusterAccess,
    crds_installed: list[str],
    inventory_url: str,
    slapd: Slapd,
    tmp_path: Path,
) -> Iterator[Tenancy]:
    """The operator with the webhook on a free port and the LDAP backend."""
    clean_slate(apiserver)
    config = tmp_path / "auth.yaml"
    config.write_text(yaml.safe_dump(slapd.auth_config()))
    process = OperatorProcess(
        kubeconfig=apiserver.kubeconfig,
        database_url=inventory_url,
        log_path=tmp_path / "operator.log",
        # A floating IP pool: without one the webhook refuses spec.networks[].floatingIP.
        env={**os.environ, "KUBENOVA_FLOATING_IP_POOL": FLOATING_POOL},
        extra_args=(
            "--auth-config", str(config),
            "--project-sync-interval", "1",
            "--webhook-port", "0",
        ),
    )  # fmt: skip
    tenancy = Tenancy(apiserver, process, slapd)
    with serving_webhook(apiserver, process):
        apply(apiserver, a_flavor("q.4", vcpus=4, memory=128, disk=1), an_image("test-image"))
        yield tenancy
        _delete_everything_made(apiserver, tenancy.projects)


def log_tail(process: OperatorProcess, lines: int = 60) -> str:
    return "\n".join(process.log().splitlines()[-lines:])
