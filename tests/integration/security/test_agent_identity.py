"""One host's agent is one host (issue 12, item 4).

Each agent runs under its own identity (here a client certificate `kubenova:agent:<host>`
in group `kubenova:agents`, bound to the chart's agent rules). Host A's agent, fully
working on its own objects, is refused every write to host B's: its Host and status, its
heartbeat Lease, the Instances placed on it and the Volumes it exports, and their status —
and nothing of B's changes. It reads the CHAP Secret of a Volume only while its host
exports the Volume or has it attached (RBAC kept by the operator; reads pass no admission).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubenova.api.v1alpha1 import Host, Instance, InstanceMigration, Volume
from kubenova.devcluster import ClusterAccess
from kubenova.devcluster.agent_identity import AGENT_RULES, agent_kubeconfig, install_agent_rbac
from kubenova.kube import ApiError, KubeClient, kubenova_kind
from kubenova.kube.client import APPLY_PATCH, JSON_PATCH
from kubenova.kube.config import load_config
from kubenova.kube.objects import apply_status
from kubenova.kube.paths import LEASES, ResourceKind
from kubenova.wellknown import AGENT_MANAGER, OPERATOR_MANAGER
from tests.builders import a_flavor, a_host, a_volume, an_image, an_instance, as_yaml
from tests.fixtures.agent import AgentFactory
from tests.fixtures.apiserver import REPO_ROOT
from tests.fixtures.operator import OperatorProcess
from tests.support.hosts import SimulatedHosts
from tests.support.waiting import eventually

pytestmark = [pytest.mark.apiserver]
SYSTEM = "kubenova-system"


@dataclass(frozen=True)
class Identities:
    """Two hosts and a kubeconfig for each one's agent."""

    a: str
    b: str
    a_config: Path
    b_config: Path


@pytest.fixture
def identities(apiserver: ClusterAccess, crds_installed: list[str]) -> Identities:
    install_agent_rbac(apiserver, REPO_ROOT / AGENT_RULES)
    suffix = uuid.uuid4().hex[:6]
    a, b = f"host-a-{suffix}", f"host-b-{suffix}"
    return Identities(a, b, agent_kubeconfig(apiserver, a), agent_kubeconfig(apiserver, b))


def get(cluster: ClusterAccess, *args: str) -> dict[str, Any] | None:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def condition(body: dict[str, Any] | None, type_: str) -> str:
    for entry in ((body or {}).get("status") or {}).get("conditions") or []:
        if entry["type"] == type_:
            return str(entry["status"])
    return ""


def as_agent(cluster: ClusterAccess, config: Path, *args: str) -> str:
    """Run kubectl with an agent's kubeconfig: its error text when refused, "" when allowed."""
    result = cluster.kubectl(*args, kubeconfig=config, check=False)
    return "" if result.returncode == 0 else result.stderr or "refused"


def test_an_agent_runs_its_host_under_its_own_identity(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    agents: AgentFactory,
    namespace: str,
    identities: Identities,
) -> None:
    cluster = apiserver
    host = identities.a
    agent = agents.start(host, kubeconfig=identities.a_config)
    eventually(
        lambda: condition(get(cluster, "host", host), "Ready") == "True",
        timeout=60,
        what=f"host {host} registered and Ready",
    )
    lease = get(cluster, "lease", f"host-{host}", "-n", SYSTEM)
    assert lease is not None
    assert lease["spec"]["holderIdentity"] == host
    cluster.kubectl(
        "apply", "-f", "-", input=as_yaml(a_flavor("id.tiny", memory=128), an_image("id-image"))
    )
    cluster.kubectl(
        "apply",
        "-f",
        "-",
        input=as_yaml(an_instance("vm", namespace, flavor="id.tiny", image="id-image")),
    )
    running = eventually(
        lambda: (
            (body := get(cluster, "instance", "vm", "-n", namespace))
            and (body.get("status") or {}).get("phase") == "Running"
            and body
        ),
        timeout=90,
        what="the Instance Running (status patched by the agent)",
    )
    renewed = eventually(
        lambda: (
            (now := get(cluster, "lease", f"host-{host}", "-n", SYSTEM))
            and now["spec"]["renewTime"] != lease["spec"]["renewTime"]
        ),
        timeout=40,
        what="the Lease renewed",
    )
    cluster.kubectl("delete", "instance", "vm", "-n", namespace, "--wait=false")
    eventually(
        lambda: get(cluster, "instance", "vm", "-n", namespace) is None,
        timeout=60,
        what="the Instance gone (the agent removed its finalizer)",
    )

    assert running["status"]["host"] == host
    assert renewed
    log = agent.log()
    for trouble in ("Forbidden", " 403", "Traceback"):
        assert trouble not in log


@pytest.fixture
def host_b_objects(
    apiserver: ClusterAccess, identities: Identities, namespace: str
) -> Iterator[dict[str, list[str]]]:
    """What the operator and B's agent would have made: B's Host, Lease, an Instance
    placed on B and a Volume exported by B, each with both finalizers and status.host."""
    cluster = apiserver
    b = identities.b
    cluster.kubectl("apply", "-f", "-", input=as_yaml(a_host(b), a_host(identities.a)))
    lease = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": f"host-{b}", "namespace": SYSTEM},
        "spec": {"holderIdentity": b, "leaseDurationSeconds": 40},
    }
    cluster.kubectl("apply", "-f", "-", input=as_yaml(lease))
    placed = {"finalizers": ["kubenova.io/operator", "kubenova.io/agent"]}
    for name, host in (("on-b", b), ("on-a", identities.a)):
        body = an_instance(name, namespace, flavor="id.tiny", image="id-image")
        body["metadata"] |= placed
        cluster.kubectl("apply", "-f", "-", input=as_yaml(body))
        cluster.kubectl(
            "patch", "instance", name, "-n", namespace, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"host": host, "phase": "Running"}}),
        )  # fmt: skip
    volume = a_volume("vol-b", namespace)
    volume["metadata"] |= placed
    cluster.kubectl("apply", "-f", "-", input=as_yaml(volume))
    cluster.kubectl(
        "patch", "volume", "vol-b", "-n", namespace, "--subresource=status", "--type=merge",
        "-p", json.dumps({"status": {"host": b, "phase": "Available"}}),
    )  # fmt: skip
    yield {
        "host": ["host", b],
        "lease": ["lease", f"host-{b}", "-n", SYSTEM],
        "instance": ["instance", "on-b", "-n", namespace],
        "volume": ["volume", "vol-b", "-n", namespace],
    }
    for kind, name in (("volume", "vol-b"), ("instance", "on-b"), ("instance", "on-a")):
        cluster.kubectl(
            "patch", kind, name, "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
        cluster.kubectl("delete", kind, name, "-n", namespace, "--wait=false", check=False)
    cluster.kubectl("delete", "host", b, identities.a, "--wait=false", check=False)
    cluster.kubectl("delete", "lease", f"host-{b}", "-n", SYSTEM, check=False)


REMOVE_AGENT_FINALIZER = [
    {"op": "test", "path": "/metadata/finalizers/1", "value": "kubenova.io/agent"},
    {"op": "remove", "path": "/metadata/finalizers/1"},
]
INSTANCES = kubenova_kind(Instance)
VOLUMES = kubenova_kind(Volume)
HOSTS = kubenova_kind(Host)
Write = Callable[[KubeClient], Awaitable[object]]


def attempt(config: Path, write: Write) -> str:
    """Make one write with an agent's identity, as the agent does (its own API client):
    the API server's refusal, or "" when allowed."""

    async def run() -> str:
        async with KubeClient(load_config(config), user_agent="kubenova-agent") as client:
            try:
                await write(client)
            except ApiError as exc:
                return str(exc)
            return ""

    return asyncio.run(run())


def status_write(
    kind: ResourceKind, name: str, namespace: str | None, status: dict[str, Any]
) -> Write:
    """Server-side apply of `status` as the agent's field manager (what the agent sends)."""
    body = {"metadata": {"name": name, "namespace": namespace}}
    return lambda client: apply_status(client, kind, body, status, manager=AGENT_MANAGER)


def finalizer_removal(kind: ResourceKind, name: str, namespace: str) -> Write:
    return lambda client: client.patch(
        kind, name, REMOVE_AGENT_FINALIZER, namespace, patch_type=JSON_PATCH
    )


def dry_run_status(kind: ResourceKind, name: str, namespace: str) -> Write:
    patch = {"apiVersion": kind.api_version, "kind": kind.kind, "status": {"phase": "Stopped"}}
    params = {"dryRun": "All", "fieldManager": AGENT_MANAGER, "force": "true"}
    return lambda client: client.request(
        "PATCH", kind.path(namespace, name, "status"), body=patch, params=params,
        content_type=APPLY_PATCH,
    )  # fmt: skip


def test_host_a_agent_cannot_change_host_b(
    apiserver: ClusterAccess, identities: Identities, host_b_objects: dict[str, list[str]]
) -> None:
    cluster = apiserver
    a, b, a_config = identities.a, identities.b, identities.a_config
    objects = host_b_objects
    namespace = objects["instance"][-1]
    # The policy holds a moment after it is listed: wait for its first refusal.
    eventually(
        lambda: (
            "may change only its own host"
            in attempt(a_config, dry_run_status(INSTANCES, "on-b", namespace))
        ),
        timeout=30,
        what="the host policy enforced",
    )
    before = {kind: get(cluster, *args) for kind, args in objects.items()}

    attempts = {
        "Host B's status": status_write(HOSTS, b, None, {"capacity": {"vcpus": 999}}),
        "Host B's spec": lambda client: client.patch(HOSTS, b, {"spec": {"schedulable": False}}),
        "Host B deleted": lambda client: client.delete(HOSTS, b),
        "B's Lease": lambda client: client.patch(
            LEASES, f"host-{b}", {"spec": {"holderIdentity": a}}, SYSTEM
        ),
        "B's Lease deleted": lambda client: client.delete(LEASES, f"host-{b}", SYSTEM),
        "an Instance on B (finalizer)": finalizer_removal(INSTANCES, "on-b", namespace),
        "an Instance on B (status)": status_write(
            INSTANCES, "on-b", namespace, {"phase": "Stopped"}
        ),
        "a Volume exported by B (finalizer)": finalizer_removal(VOLUMES, "vol-b", namespace),
        "a Volume exported by B (status)": status_write(
            VOLUMES, "vol-b", namespace, {"phase": "Error"}
        ),
        "its own Instance handed to B": status_write(INSTANCES, "on-a", namespace, {"host": b}),
        "its own Instance resized": status_write(
            INSTANCES,
            "on-a",
            namespace,
            {"resources": {"vcpus": 64, "memoryMiB": 65536, "diskGiB": 1}},
        ),
    }
    refusals = {what: attempt(a_config, write) for what, write in attempts.items()}
    # The same identity may do these very things to its own host's objects: the refusals
    # above are about whose objects they are, not about the verbs.
    own = {
        "its Instance's status": attempt(
            a_config, status_write(INSTANCES, "on-a", namespace, {"phase": "Stopped"})
        ),
        "its finalizer on its Instance": attempt(
            a_config, finalizer_removal(INSTANCES, "on-a", namespace)
        ),
        "its Host's status": attempt(a_config, status_write(HOSTS, a, None, {"agentVersion": "x"})),
    }

    allowed = [what for what, refusal in refusals.items() if not refusal]
    assert allowed == [], f"host A's agent was allowed: {allowed}"
    assert "may change only its own host" in refusals["an Instance on B (status)"]
    assert "may change only its own host" in refusals["a Volume exported by B (finalizer)"]
    assert "may change only its own host" in refusals["Host B's status"]
    assert "may hold only its own Lease" in refusals["B's Lease"]
    assert "written by the kubenova operator only" in refusals["its own Instance handed to B"]
    assert "status.resources of Instance on-a" in refusals["its own Instance resized"]
    assert own == dict.fromkeys(own, ""), own
    after = {kind: get(cluster, *args) for kind, args in objects.items()}
    for kind in objects:
        assert before[kind] is not None, kind
        assert after[kind] is not None, kind
        version = after[kind]["metadata"]["resourceVersion"]
        assert version == before[kind]["metadata"]["resourceVersion"], f"{kind} changed"


def test_an_agent_identity_without_a_host_writes_nothing(
    apiserver: ClusterAccess, identities: Identities, host_b_objects: dict[str, list[str]]
) -> None:
    # In group kubenova:agents (so holding the agents' RBAC rights) but named for no host.
    stray = apiserver.user_kubeconfig("kubenova-stray-agent", ("kubenova:agents",))
    namespace = host_b_objects["instance"][-1]
    refusal = eventually(
        lambda: attempt(stray, dry_run_status(INSTANCES, "on-b", namespace)),
        timeout=30,
        what="the refusal",
    )
    assert "naming no host" in refusal


def secret_read(cluster: ClusterAccess, config: Path, namespace: str, name: str) -> str:
    """`kubectl get secret` with an agent's kubeconfig: the refusal, or "" when read."""
    result = cluster.kubectl("get", "secret", name, "-n", namespace, kubeconfig=config, check=False)
    return "" if result.returncode == 0 else result.stderr or "refused"


def test_an_agent_reads_only_the_chap_secrets_of_its_volumes(
    apiserver: ClusterAccess,
    operator: OperatorProcess,
    hosts: SimulatedHosts,
    namespace: str,
    identities: Identities,
) -> None:
    cluster = apiserver
    a, b = identities.a, identities.b
    hosts.add(b, services=("volume",))
    hosts.add(a, services=("compute",))
    cluster.kubectl(
        "apply", "-f", "-", input=as_yaml(a_flavor("id.tiny", memory=128), an_image("id-image"))
    )
    cluster.kubectl("apply", "-f", "-", input=as_yaml(a_volume("data", namespace)))
    placed = eventually(
        lambda: (
            (body := get(cluster, "volume", "data", "-n", namespace))
            and ((body.get("status") or {}).get("target") or {}).get("chapSecret")
            and body
        ),
        timeout=60,
        what="the Volume placed with a CHAP Secret",
    )
    secret = placed["status"]["target"]["chapSecret"]
    assert placed["status"]["host"] == b

    # The exporting host's agent may read it (once the operator granted it); A may not.
    eventually(
        lambda: secret_read(cluster, identities.b_config, namespace, secret) == "",
        timeout=30,
        what="host B granted its volume's CHAP Secret",
    )
    refused_before = secret_read(cluster, identities.a_config, namespace, secret)

    # Attached to an Instance on A, A may read it too ...
    instance = an_instance(
        "vm", namespace, flavor="id.tiny", image="id-image", volumes=[{"volume": "data"}]
    )
    instance["spec"]["placement"] = {"host": a}
    cluster.kubectl("apply", "-f", "-", input=as_yaml(instance))
    eventually(
        lambda: secret_read(cluster, identities.a_config, namespace, secret) == "",
        timeout=60,
        what="host A granted the CHAP Secret of the volume attached there",
    )
    # ... and no longer once that Instance is gone.
    cluster.kubectl(
        "patch", "instance", "vm", "-n", namespace, "--type=merge",
        "-p", '{"metadata":{"finalizers":null}}',
    )  # fmt: skip
    cluster.kubectl("delete", "instance", "vm", "-n", namespace, "--wait=false")
    refused_after = eventually(
        lambda: secret_read(cluster, identities.a_config, namespace, secret),
        timeout=60,
        what="host A's grant withdrawn with the attachment",
    )
    other_secrets = cluster.kubectl(
        "get", "secrets", "-n", namespace, kubeconfig=identities.b_config, check=False
    )

    assert "forbidden" in refused_before.lower()
    assert "forbidden" in refused_after.lower()
    assert other_secrets.returncode != 0  # B reads its secret by name; it cannot list
    assert secret_read(cluster, identities.b_config, namespace, secret) == ""


MIGRATIONS = kubenova_kind(InstanceMigration)


def test_an_agent_reports_only_on_its_own_migrations_and_never_steers_them(
    apiserver: ClusterAccess, identities: Identities, namespace: str
) -> None:
    a, b, a_config = identities.a, identities.b, identities.a_config
    hosts = {"m-a": (a, b), "m-b": (b, f"host-c-{uuid.uuid4().hex[:6]}")}
    for name, (source, target) in hosts.items():
        manifest = {"apiVersion": MIGRATIONS.api_version, "kind": "InstanceMigration",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": {"instanceName": "mover"}}  # fmt: skip
        apiserver.kubectl("apply", "-f", "-", input=as_yaml(manifest))
        status = {"phase": "Running", "sourceHost": source, "targetHost": target}
        body = {"metadata": {"name": name, "namespace": namespace}}
        refusal = attempt(
            apiserver.kubeconfig,
            lambda client, body=body, status=status: apply_status(
                client, MIGRATIONS, body, status, manager=OPERATOR_MANAGER
            ),
        )
        assert refusal == "", refusal
    progress = {"progress": {"dataTotal": 100, "dataRemaining": 50}}
    eventually(
        lambda: (
            "may change only its own host"
            in attempt(a_config, status_write(MIGRATIONS, "m-b", namespace, progress))
        ),
        timeout=30,
        what="the host policy enforced on migrations",
    )
    # Host A is m-a's source: it reports there, and only reports.
    assert attempt(a_config, status_write(MIGRATIONS, "m-a", namespace, progress)) == ""
    for steer in ({"phase": "Completed"}, {"targetHost": a}, {"sourceHost": b}):
        refusal = attempt(a_config, status_write(MIGRATIONS, "m-a", namespace, progress | steer))
        assert "written by the kubenova operator only" in refusal, (steer, refusal)
