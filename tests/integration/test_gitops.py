"""GitOps friendliness: what a GitOps tool applies stays exactly as it applied it.

The examples are applied the way Argo CD applies them (server-side apply under its own
field manager); the real operator reconciles them with Hosts heart-beating and a real
agent (fake hypervisor) running what lands on its host — finalizers, labels and status get
written — and then `kubectl diff --server-side` under the same manager reports no drift:
the operator and agents write only what they own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from tests.builders import an_image, as_yaml
from tests.fixtures.agent import AgentFactory
from tests.fixtures.operator import OperatorProcess
from tests.support.hosts import SimulatedHosts
from tests.support.namespaces import finish_terminating
from tests.support.waiting import eventually

pytestmark = pytest.mark.apiserver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MANAGER = "argocd"
# The examples' Instance boots the Image `kubenova image upload` makes; not in examples/.
IMAGE = "busybox-test"


def example_objects() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def get(cluster: ClusterAccess, doc: dict[str, Any]) -> dict[str, Any] | None:
    meta = doc["metadata"]
    args = ["get", f"{doc['kind'].lower()}.kubenova.io", meta["name"], "-o", "json"]
    args.append("--show-managed-fields")
    if meta.get("namespace"):
        args += ["-n", meta["namespace"]]
    result = cluster.kubectl(*args, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for entry in ((body or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == type_:
            return dict(entry)
    return {}


def kubectl_diff(cluster: ClusterAccess) -> subprocess.CompletedProcess[str]:
    """`kubectl diff --server-side` of the examples; exit 0: no drift, 1: drift."""
    return cluster.kubectl(
        "diff", "--server-side", f"--field-manager={MANAGER}", "-f", str(EXAMPLES), check=False
    )


def apply_examples(cluster: ClusterAccess) -> list[dict[str, Any]]:
    """Apply examples/ as Argo CD would: server-side, under its own field manager."""
    # An earlier test may have deleted a Project of the same name; with no namespace
    # controller here its namespace would stay Terminating and the Project never Ready.
    finish_terminating(
        cluster, *(d["metadata"]["name"] for d in example_objects() if d["kind"] == "Project")
    )
    cluster.kubectl("apply", "-f", "-", input=as_yaml(an_image(IMAGE, minMemoryMiB=96)))
    cluster.kubectl("apply", "--server-side", f"--field-manager={MANAGER}", "-f", str(EXAMPLES))
    return example_objects()


@pytest.fixture
def examples_removed(apiserver: ClusterAccess) -> Iterator[None]:
    """Afterwards, every example object is gone again (finalizers and all)."""
    yield
    for doc in reversed(example_objects()):
        meta = doc["metadata"]
        target = [f"{doc['kind'].lower()}.kubenova.io", meta["name"]]
        scope = ["-n", meta["namespace"]] if meta.get("namespace") else []
        apiserver.kubectl(
            "patch",
            *target,
            *scope,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )
        apiserver.kubectl("delete", *target, *scope, "--wait=false", check=False)
    apiserver.kubectl("delete", "images.kubenova.io", IMAGE, "--wait=false", check=False)


def test_reconciled_examples_show_no_drift_under_server_side_apply(
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    agents: AgentFactory,
    apiserver: ClusterAccess,
    examples_removed: None,
) -> None:
    cluster = apiserver
    # A storage host too small for any instance, and a compute host with a real agent.
    hosts.add("gitops-storage", vcpus=1, memory_mib=64, services=("volume", "network"))
    agent = agents.start("gitops-compute")
    for host in ("gitops-storage", "gitops-compute"):
        eventually(
            lambda h=host: (
                condition(get(cluster, {"kind": "Host", "metadata": {"name": h}}), "Ready").get(
                    "status"
                )
                == "True"
            ),
            timeout=60,
            what=f"host {host} Ready",
        )
    applied_examples = apply_examples(cluster)
    instances = [d for d in applied_examples if d["kind"] == "Instance"]
    projects = [d for d in applied_examples if d["kind"] == "Project"]
    assert instances, "examples/ holds no Instance"

    for doc in instances:
        scheduled = eventually(
            lambda d=doc: (
                condition(get(cluster, d), "Scheduled").get("status") == "True" and get(cluster, d)
            ),
            timeout=60,
            what=f"Instance {doc['metadata']['name']} scheduled",
        )
        assert scheduled["status"]["host"] == "gitops-compute"
    for doc in projects:
        eventually(
            lambda d=doc: condition(get(cluster, d), "Ready").get("status") == "True",
            timeout=60,
            what=f"Project {doc['metadata']['name']} ready",
        )
    # The agent has acted on it too (its observedGeneration), whatever the phase.
    eventually(
        lambda: all(
            ((get(cluster, d) or {}).get("status") or {}).get("observedGeneration")
            for d in instances
        ),
        timeout=60,
        what="the agent's status on the Instances",
    )

    diff = kubectl_diff(cluster)

    assert diff.returncode == 0, f"drift after reconciling:\n{diff.stdout}{diff.stderr}"
    # Not vacuous: the objects did change, in the parts the operator and agents own.
    instance = get(cluster, instances[0])
    assert instance is not None
    assert {"kubenova.io/operator", "kubenova.io/agent"} <= set(instance["metadata"]["finalizers"])
    assert instance["status"]["host"] == "gitops-compute"
    managers = {entry["manager"] for entry in instance["metadata"]["managedFields"]}
    assert {MANAGER, "kubenova-operator", "kubenova-agent"} <= managers
    spec_owners = {
        entry["manager"]
        for entry in instance["metadata"]["managedFields"]
        if "f:spec" in (entry.get("fieldsV1") or {})
    }
    assert spec_owners == {MANAGER}
    assert "Traceback" not in operator.log()
    assert "Traceback" not in agent.log()


def test_a_spec_change_in_git_is_the_only_drift(
    apiserver: ClusterAccess, examples_removed: None, tmp_path: Path
) -> None:
    """The diff is not blind: editing a manifest shows up, and only that edit."""
    applied_examples = apply_examples(apiserver)
    network = next(d for d in applied_examples if d["kind"] == "Network")
    edited = json.loads(json.dumps(network))
    edited["spec"]["dns"] = ["10.20.0.53"]
    path = tmp_path / "network.yaml"
    path.write_text(yaml.safe_dump(edited))

    diff = apiserver.kubectl(
        "diff", "--server-side", f"--field-manager={MANAGER}", "-f", str(path), check=False
    )

    assert diff.returncode == 1, diff.stderr
    changed = [
        (line[0], line[1:].split()[-1])
        for line in diff.stdout.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---")) and "generation" not in line
    ]
    assert changed == [("-", "10.20.0.1"), ("+", "10.20.0.53")]
