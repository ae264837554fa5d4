"""Helpers for volume tests against the real apiserver: read, wait, play the compute agent."""

from __future__ import annotations

import base64
import json

from kubenova.devcluster import ClusterAccess
from kubenova.kube.meta import Body
from tests.builders import as_yaml
from tests.support.waiting import eventually

ATTACHER_MANAGER = "kubenova-agent-volumes"


def get(cluster: ClusterAccess, kind: str, namespace: str, name: str) -> Body | None:
    result = cluster.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def apply(cluster: ClusterAccess, *docs: Body) -> None:
    cluster.kubectl("apply", "-f", "-", input=as_yaml(*docs))


def condition(body: Body | None, type_: str) -> Body:
    for entry in ((body or {}).get("status") or {}).get("conditions", []):
        if entry["type"] == type_:
            return dict(entry)
    return {}


def status(body: Body | None) -> Body:
    return dict((body or {}).get("status") or {})


def volume_in_phase(
    cluster: ClusterAccess, namespace: str, name: str, phase: str, timeout: float = 30
) -> Body:
    def probe() -> Body | None:
        body = get(cluster, "volume", namespace, name)
        return body if status(body).get("phase") == phase else None

    return eventually(probe, timeout=timeout, what=f"volume {name} {phase}")


def volume_gone(cluster: ClusterAccess, namespace: str, name: str, timeout: float = 30) -> None:
    eventually(
        lambda: get(cluster, "volume", namespace, name) is None,
        timeout=timeout,
        what=f"volume {name} deleted",
    )


def secret_data(cluster: ClusterAccess, namespace: str, name: str) -> dict[str, str]:
    body = get(cluster, "secret", namespace, name)
    assert body is not None, f"secret {name} missing"
    return {k: base64.b64decode(v).decode() for k, v in (body.get("data") or {}).items()}


def report_plugged(
    cluster: ClusterAccess, namespace: str, instance: str, plugged: dict[str, str]
) -> None:
    """What the compute host's attacher does: Instance.status.volumes under its own manager."""
    patch = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": instance, "namespace": namespace},
        "status": {"volumes": [{"volume": v, "device": d} for v, d in plugged.items()]},
    }
    cluster.kubectl(
        "apply",
        "--server-side",
        "--force-conflicts",
        f"--field-manager={ATTACHER_MANAGER}",
        "--subresource=status",
        "-f",
        "-",
        input=json.dumps(patch),
    )


def drop_agent_finalizer(cluster: ClusterAccess, kind: str, namespace: str, name: str) -> None:
    """What an Instance's compute agent does once the domain is gone."""
    body = get(cluster, kind, namespace, name)
    assert body is not None
    left = [f for f in body["metadata"].get("finalizers", []) if f != "kubenova.io/agent"]
    cluster.kubectl(
        "patch", kind, name, "-n", namespace, "--type=merge",
        "-p", json.dumps({"metadata": {"finalizers": left}}),
    )  # fmt: skip


def strip_and_delete(cluster: ClusterAccess, namespace: str, kind: str) -> None:
    listing = cluster.kubectl("get", kind, "-n", namespace, "-o", "json", check=False)
    if listing.returncode != 0:
        return
    for item in json.loads(listing.stdout)["items"]:
        cluster.kubectl(
            "patch", kind, item["metadata"]["name"], "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
    cluster.kubectl("delete", kind, "--all", "-n", namespace, "--wait=false", check=False)
