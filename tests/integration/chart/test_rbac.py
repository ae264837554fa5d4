"""Least privilege, proven three ways.

1. Statically: the rights the chart grants each ServiceAccount equal the rights its code
   uses (read from the source by code_access.py), give or take a short, explained list.
2. With `kubectl auth can-i --as system:serviceaccount:...` against the installed chart:
   every right the code uses is there; what must stay out of reach is refused.
3. For what RBAC cannot express, the chart's ValidatingAdmissionPolicies, by requests
   made as each ServiceAccount (impersonated by the admin).
The operator and an agent running under these accounts are in test_least_privilege_run.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubenova.api.v1alpha1 import Instance
from kubenova.devcluster import ClusterAccess
from kubenova.errors import ApiError
from kubenova.kube import KubeClient, kubenova_kind, load_config
from tests.builders import a_flavor, an_image, an_instance, as_yaml
from tests.integration.chart.code_access import Access, accesses
from tests.integration.chart.conftest import (
    AGENT_SA,
    NAMESPACE,
    OPERATOR_SA,
    RELEASE_SETTINGS,
    REPO,
    Helm,
    Release,
    documents,
    policies_enforced,
    service_account_kubeconfig,
)
from tests.support.waiting import eventually

SOURCES = {"kubenova-operator": REPO / "operator", "kubenova-agent": REPO / "agents"}
USERS = {"kubenova-operator": OPERATOR_SA, "kubenova-agent": AGENT_SA}
# Rights no kube call shows, yet the component needs them.
FRAMEWORK: dict[str, dict[Access, str]] = {
    "kubenova-operator": {
        ("rbac.authorization.k8s.io/clusterroles", "escalate"): "applying the project roles",
        ("rbac.authorization.k8s.io/clusterroles", "bind"): "binding the project roles",
    },
    "kubenova-agent": {},
}
# Rights the code uses that the chart withholds on purpose.
SYSTEM_NAMESPACE_EXISTS = (
    "the agent makes kubenova-system (ensure_namespace) when its Lease cannot be created for "
    "want of it; the chart installs into it, so it always exists"
)
WITHHELD: dict[str, dict[Access, str]] = {
    "kubenova-operator": {},
    "kubenova-agent": {("namespaces", verb): SYSTEM_NAMESPACE_EXISTS for verb in ("get", "create")},
}


@dataclass(frozen=True)
class Grant:
    resource: str  # group/plural[/sub], or plural for the core group
    verb: str
    namespace: str | None  # None: cluster-wide (ClusterRoleBinding)
    names: tuple[str, ...]  # resourceNames; () means any


def grants(manifest: list[dict[str, Any]], account: str) -> list[Grant]:
    """Every (resource, verb) the rendered RBAC gives ServiceAccount `account`."""
    roles = {
        (doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"]): doc
        for doc in manifest
        if doc["kind"] in ("Role", "ClusterRole")
    }
    found = []
    for binding in manifest:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        subjects = binding.get("subjects") or []
        if not any(s["kind"] == "ServiceAccount" and s["name"] == account for s in subjects):
            continue
        namespace = binding["metadata"].get("namespace")
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    name = f"{group}/{resource}" if group else resource
                    for verb in rule["verbs"]:
                        names = tuple(rule.get("resourceNames") or ())
                        found.append(Grant(name, verb, namespace, names))
    return found


@pytest.fixture(scope="module")
def rendered(helm: Helm) -> list[dict[str, Any]]:
    settings = [f"--set={item}" for item in RELEASE_SETTINGS]
    return documents(helm.template(None, *settings, kube_version="1.33.0"))


@pytest.mark.parametrize("account", list(SOURCES))
def test_the_chart_grants_what_the_code_uses_and_nothing_else(
    rendered: list[dict[str, Any]], account: str
) -> None:
    code = accesses(SOURCES[account])
    used = set(code.used)
    given = {(g.resource, g.verb) for g in grants(rendered, account)}

    assert code.unresolved == [], (
        "code_access.py cannot tell which resource these calls touch; pass a kind constant "
        "(kubenova_kind(Model) or kubenova.kube.paths) so the chart's RBAC can follow"
    )
    missing = sorted(used - given - WITHHELD[account].keys())
    assert missing == [], (
        "the code uses rights the chart does not grant: "
        + "; ".join(
            f"{resource} {verb} at {code.used[(resource, verb)][0]}" for resource, verb in missing
        )
        + f" -- add them to charts/kubenova/templates/{account.split('-')[1]}-rbac.yaml"
    )
    extra = sorted(given - used - FRAMEWORK[account].keys())
    assert extra == [], f"the chart grants {account} rights its code never uses: {extra}"
    assert not (used & FRAMEWORK[account].keys())  # if the code calls it, it is not special


# -- kubectl auth can-i against the installed release -----------------------------------------


def split(resource: str) -> tuple[str, str, str]:
    """`group/plural[/sub]` or core `plural[/sub]` -> (group, plural, sub); groups have dots."""
    parts = resource.split("/")
    if "." in parts[0]:
        group, plural, *sub = parts
    else:
        group, (plural, *sub) = "", parts
    return group, plural, sub[0] if sub else ""


def can_i(
    cluster: ClusterAccess, user: str, verb: str, resource: str, namespace: str | None = None
) -> bool:
    """`kubectl auth can-i` as `user`; `resource` is group/plural[/sub][:name]."""
    resource, _, name = resource.partition(":")
    group, plural, sub = split(resource)
    target = f"{plural}.{group}" if group else plural
    if name:
        target += f"/{name}"
    args = ["auth", "can-i", verb, target, f"--as={user}"]
    if sub:
        args.append(f"--subresource={sub}")
    args += [f"--namespace={namespace}"] if namespace else ["--all-namespaces"]
    result = cluster.kubectl(*args, check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def cluster_scoped(cluster: ClusterAccess) -> set[tuple[str, str]]:
    """(group, plural) of every cluster-scoped resource the server knows."""
    names = cluster.kubectl("api-resources", "--namespaced=false", "-o", "name").stdout.split()
    return {(group, plural) for plural, _, group in (n.partition(".") for n in names)}


@pytest.mark.apiserver
@pytest.mark.parametrize("account", list(SOURCES))
def test_kubectl_auth_can_i_every_right_the_code_uses(release: Release, account: str) -> None:
    cluster = release.cluster
    scoped = cluster_scoped(cluster)
    given = grants(release.manifest, account)
    checked = []
    for resource, verb in sorted(set(accesses(SOURCES[account]).used) - WITHHELD[account].keys()):
        grant = next(g for g in given if (g.resource, g.verb) == (resource, verb))
        group, plural, _ = split(resource)
        namespace = None if (group, plural) in scoped else (grant.namespace or "default")
        target = resource + (f":{grant.names[0]}" if grant.names else "")
        allowed = can_i(cluster, USERS[account], verb, target, namespace)
        checked.append((verb, target, namespace, allowed))

    refused = [c for c in checked if not c[3]]
    assert refused == [], f"{account} lacks rights its code uses: {refused}"
    assert len(checked) >= 15


OUT_OF_REACH = {
    "kubenova-agent": [
        ("create", "pods", "default"),
        ("create", "pods/exec", "default"),
        ("get", "secrets", "default"),
        ("list", "secrets", NAMESPACE),
        ("get", "secrets:kubenova-database", NAMESPACE),
        ("create", "kubenova.io/instances", "default"),
        ("delete", "kubenova.io/instances", "default"),
        ("update", "kubenova.io/instances", "default"),
        ("patch", "kubenova.io/hosts", None),
        ("delete", "kubenova.io/hosts", None),
        ("patch", "kubenova.io/flavors", None),
        ("patch", "kubenova.io/networks", "default"),
        ("create", "namespaces", None),
        ("create", "coordination.k8s.io/leases", "default"),
        ("patch", "coordination.k8s.io/leases", "kube-node-lease"),
        ("list", "nodes", None),
        ("get", "configmaps", NAMESPACE),
        ("create", "rbac.authorization.k8s.io/rolebindings", "default"),
        ("impersonate", "users", None),
    ],
    "kubenova-operator": [
        ("create", "pods", "default"),
        ("create", "pods/exec", "default"),
        ("list", "secrets", None),
        ("watch", "secrets", "default"),
        ("patch", "secrets", "default"),
        ("update", "secrets", "default"),
        ("create", "kubenova.io/instances", "default"),
        ("delete", "kubenova.io/instances", "default"),
        ("update", "kubenova.io/instances", "default"),
        ("patch", "kubenova.io/flavors", None),
        ("patch", "kubenova.io/hosts", None),
        # Its own leader Lease only (creates elsewhere in its namespace: the policy).
        ("create", "coordination.k8s.io/leases", "default"),
        ("patch", "coordination.k8s.io/leases", NAMESPACE),
        ("patch", "coordination.k8s.io/leases:host-h1", NAMESPACE),
        ("delete", "coordination.k8s.io/leases:kubenova-operator-leader", NAMESPACE),
        # The agents' heartbeats are read in its namespace, no other namespace's Leases.
        ("list", "coordination.k8s.io/leases", "kube-node-lease"),
        ("watch", "coordination.k8s.io/leases", None),
        ("patch", "rbac.authorization.k8s.io/clusterroles:cluster-admin", None),
        # It reads its own ClusterRole only (the webhook configurations' owner).
        ("get", "rbac.authorization.k8s.io/clusterroles:cluster-admin", None),
        ("escalate", "rbac.authorization.k8s.io/clusterroles:cluster-admin", None),
        ("bind", "rbac.authorization.k8s.io/clusterroles:cluster-admin", None),
        ("create", "rbac.authorization.k8s.io/clusterrolebindings", None),
        ("patch", "admissionregistration.k8s.io/validatingwebhookconfigurations:other", None),
        ("patch", "admissionregistration.k8s.io/mutatingwebhookconfigurations:other", None),
        ("create", "apps/deployments", NAMESPACE),
        ("impersonate", "users", None),
    ],
}


@pytest.mark.apiserver
@pytest.mark.parametrize("account", list(OUT_OF_REACH))
def test_kubectl_auth_can_i_refuses_what_stays_out_of_reach(release: Release, account: str) -> None:
    allowed = [
        (verb, resource, namespace)
        for verb, resource, namespace in OUT_OF_REACH[account]
        if can_i(release.cluster, USERS[account], verb, resource, namespace)
    ]

    assert allowed == []


@pytest.mark.apiserver
def test_the_agent_reads_only_the_secrets_it_is_given(release: Release) -> None:
    cluster = release.cluster

    assert can_i(cluster, AGENT_SA, "get", "secrets:images-s3", NAMESPACE)
    assert not can_i(cluster, AGENT_SA, "get", "secrets:images-s4", NAMESPACE)
    assert not can_i(cluster, AGENT_SA, "get", "secrets:images-s3", "default")
    assert not can_i(cluster, AGENT_SA, "watch", "secrets:images-s3", NAMESPACE)


@pytest.mark.apiserver
def test_every_user_can_read_the_catalog_and_no_more(release: Release) -> None:
    # Flavors and Images are cluster-scoped: a project's RoleBindings cannot show them, yet
    # a member has to see what there is to boot (OpenStack's public flavors and images).
    cluster = release.cluster
    for verb in ("get", "list", "watch"):
        for resource in ("kubenova.io/flavors", "kubenova.io/images"):
            assert can_i(cluster, "some-project-member", verb, resource), (verb, resource)
    for verb in ("create", "patch", "delete"):
        for resource in ("kubenova.io/flavors", "kubenova.io/images"):
            assert not can_i(cluster, "some-project-member", verb, resource), (verb, resource)
    assert not can_i(cluster, "some-project-member", "list", "kubenova.io/hosts")


# -- what RBAC cannot say: the admission policies -----------------------------------------------


def as_user(cluster: ClusterAccess, user: str, *args: str, input: str | None = None) -> str:
    """Run kubectl as `user`; the error text when refused, "" when allowed."""
    result = cluster.kubectl(*args, f"--as={user}", input=input, check=False)
    return "" if result.returncode == 0 else result.stderr


@pytest.fixture
def handed_over(release: Release, tmp_path: Path) -> Iterator[str]:
    """An Instance as the operator leaves it: both finalizers and status.host."""
    cluster = release.cluster
    cluster.kubectl(
        "apply", "-f", "-", input=as_yaml(a_flavor("chart.tiny"), an_image("chart-image"))
    )
    name = f"vm-{tmp_path.name[-8:].lower().replace('_', '-')}"
    body = an_instance(name, "default", flavor="chart.tiny", image="chart-image")
    body["metadata"] |= {"finalizers": ["kubenova.io/operator", "kubenova.io/agent"]}
    cluster.kubectl("apply", "-f", "-", input=as_yaml(body))
    cluster.kubectl(
        "patch", "instance", name, "-n", "default", "--subresource=status", "--type=merge",
        "-p", '{"status":{"host":"h1"}}',
    )  # fmt: skip
    policies_enforced(cluster, name, "default")
    yield name
    cluster.kubectl(
        "patch",
        "instance",
        name,
        "-n",
        "default",
        "--type=merge",
        "-p",
        '{"metadata":{"finalizers":null}}',
        check=False,
    )
    cluster.kubectl("delete", "instance", name, "-n", "default", "--wait=false", check=False)


async def move_status(kubeconfig: Path, name: str, host: str) -> str:
    """A status patch setting `host` on Instance default/`name`; the refusal, "" if allowed."""
    async with KubeClient(load_config(kubeconfig)) as client:
        try:
            await client.patch(
                kubenova_kind(Instance), name, {"status": {"host": host}}, "default",
                subresource="status",
            )  # fmt: skip
        except ApiError as exc:
            return str(exc)
    return ""


@pytest.mark.apiserver
def test_the_agent_may_change_only_its_finalizer(
    release: Release, handed_over: str, tmp_path: Path
) -> None:
    cluster = release.cluster
    # The agent of the Instance's host h1, on a token bound to node h1 as its pod's is
    # (the host policy refuses an agent token that names no node).
    agent = service_account_kubeconfig(
        cluster, "kubenova-agent", tmp_path / "agent.kubeconfig", node="h1"
    )

    def as_agent(*args: str) -> str:
        result = cluster.kubectl(*args, kubeconfig=agent, check=False)
        return "" if result.returncode == 0 else result.stderr

    patch = ["patch", "instance", handed_over, "-n", "default"]

    spec = as_agent(*patch, "--type=merge", "-p", '{"spec":{"powerState":"Stopped"}}')
    label = as_agent(*patch, "--type=merge", "-p", '{"metadata":{"labels":{"owner":"h2"}}}')
    # Nor may it hand its Instance to another host: status.host is the operator's. (As the
    # agent sends it: its own client; kubectl would first read the status, not granted.)
    moved = asyncio.run(move_status(agent, handed_over, "h2"))
    others = as_agent(
        *patch,
        "--type=json",
        "-p",
        '[{"op":"remove","path":"/metadata/finalizers/0"}]',
    )
    remove_own = (
        '[{"op":"test","path":"/metadata/finalizers/1","value":"kubenova.io/agent"},'
        '{"op":"remove","path":"/metadata/finalizers/1"}]'
    )
    # Another host's agent (token bound to node h2) may not even do that.
    h2 = service_account_kubeconfig(
        cluster, "kubenova-agent", tmp_path / "h2.kubeconfig", node="h2"
    )
    stranger = cluster.kubectl(*patch, "--type=json", "-p", remove_own, kubeconfig=h2, check=False)
    own = as_agent(*patch, "--type=json", "-p", remove_own)

    assert "the kubenova agent may not change spec" in spec
    assert "may not change labels" in label
    assert "written by the kubenova operator only" in moved
    assert (
        "only its own finalizer kubenova.io/agent" in others
        or "kubenova.io/* finalizers are managed by kubenova only" in others
    )
    assert "the agent of host h2 may change only its own host" in stranger.stderr
    assert own == ""
    body = json.loads(
        cluster.kubectl("get", "instance", handed_over, "-n", "default", "-o", "json").stdout
    )
    assert body["metadata"]["finalizers"] == ["kubenova.io/operator"]
    assert "owner" not in (body["metadata"].get("labels") or {})
    assert body["status"]["host"] == "h1"
    assert body["spec"].get("powerState", "Running") == "Running"


@pytest.mark.apiserver
def test_the_operator_never_writes_spec(release: Release, handed_over: str) -> None:
    cluster = release.cluster
    patch = ["patch", "instance", handed_over, "-n", "default", "--type=merge"]

    spec = as_user(cluster, OPERATOR_SA, *patch, "-p", '{"spec":{"powerState":"Stopped"}}')
    label = as_user(cluster, OPERATOR_SA, *patch, "-p", '{"metadata":{"labels":{"owner":"h2"}}}')

    assert "never writes spec" in spec
    assert label == ""


def namespace_manifest(name: str, project: str | None) -> str:
    labels = {"kubenova.io/project": project} if project else {}
    return json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}
    )


@pytest.mark.apiserver
def test_the_operator_manages_only_project_namespaces(release: Release) -> None:
    cluster = release.cluster
    create = ["create", "--dry-run=server", "-f", "-"]

    def policies_ready() -> bool:
        plain = namespace_manifest("chart-plain", None)
        return "kubenova.io/project" in as_user(cluster, OPERATOR_SA, *create, input=plain)

    eventually(policies_ready, timeout=30, what="the namespace policy")

    project = as_user(cluster, OPERATOR_SA, *create, input=namespace_manifest("chart-p", "p"))
    system = as_user(
        cluster, OPERATOR_SA, "delete", "namespace", "kube-node-lease", "--dry-run=server"
    )
    adopt_default = as_user(
        cluster,
        OPERATOR_SA,
        "label",
        "namespace",
        "default",
        "kubenova.io/project=p",
        "--dry-run=server",
    )
    cluster.kubectl("create", "namespace", "chart-unlabelled", check=False)
    unlabelled = as_user(
        cluster, OPERATOR_SA, "delete", "namespace", "chart-unlabelled", "--dry-run=server"
    )

    cluster.kubectl("delete", "namespace", "chart-unlabelled", "--wait=false", check=False)
    assert project == ""
    assert "never touches a system namespace" in system
    assert "never touches a system namespace" in adopt_default
    assert "only namespaces labelled kubenova.io/project" in unlabelled


def lease_manifest(name: str) -> str:
    return json.dumps(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"holderIdentity": name},
        }
    )


@pytest.mark.apiserver
def test_the_operator_makes_only_its_leader_lease(release: Release) -> None:
    cluster = release.cluster
    create = ["create", "--dry-run=server", "-f", "-"]

    def refused_forgery() -> str:
        return as_user(cluster, OPERATOR_SA, *create, input=lease_manifest("host-forged"))

    forged = eventually(refused_forgery, timeout=30, what="the leader lease policy")
    own = as_user(cluster, OPERATOR_SA, *create, input=lease_manifest("kubenova-operator-leader"))

    assert "writes only its leader Lease" in forged
    assert own == "" or "AlreadyExists" in own or "already exists" in own


def cluster_role(rules: list[dict[str, Any]]) -> str:
    return json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {
                "name": "kubenova-project-admin",
                "labels": {"app.kubernetes.io/managed-by": "kubenova-operator"},
            },
            "rules": rules,
        }
    )


@pytest.mark.apiserver
def test_the_project_roles_stay_tenant_roles(release: Release) -> None:
    cluster = release.cluster
    apply = [
        "apply",
        "--server-side",
        "--field-manager=kubenova-operator",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
    ]
    tenant = [
        {
            "apiGroups": ["kubenova.io"],
            "resources": ["instances", "volumes"],
            "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
        }
    ]
    secrets = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]

    def refused_secrets() -> str:
        return as_user(cluster, OPERATOR_SA, *apply, input=cluster_role(secrets))

    refusal = eventually(refused_secrets, timeout=30, what="the project-role policy")
    allowed = as_user(cluster, OPERATOR_SA, *apply, input=cluster_role(tenant))
    binding = json.dumps(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {
                "name": "kubenova-admin",
                "namespace": "default",
                "labels": {"app.kubernetes.io/managed-by": "kubenova-operator"},
            },
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "User", "name": "mallory", "apiGroup": "rbac.authorization.k8s.io"}
            ],
        }
    )
    bind_admin = as_user(cluster, OPERATOR_SA, *apply, input=binding)

    assert "project roles may grant only tenant kubenova resources" in refusal
    assert allowed == ""
    assert bind_admin != ""  # RBAC: no bind on cluster-admin (nor its rights)


@pytest.mark.apiserver
def test_the_operator_grants_agents_only_chap_reads(release: Release) -> None:
    """The operator may make per-host CHAP read Roles and their bindings, of that shape only."""
    cluster = release.cluster
    apply = [
        "apply", "--server-side", "--field-manager=kubenova-operator", "--force-conflicts",
        "--dry-run=server", "-f", "-",
    ]  # fmt: skip
    labels = {"app.kubernetes.io/managed-by": "kubenova-operator"}

    def role(name: str, rules: list[dict[str, Any]]) -> str:
        meta = {"name": name, "namespace": "default", "labels": labels}
        return json.dumps(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta}
            | {"rules": rules}
        )

    def binding(name: str, role_name: str, user: str) -> str:
        meta = {"name": name, "namespace": "default", "labels": labels}
        ref = {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name}
        subject = {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"}
        return json.dumps(
            {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding"}
            | {"metadata": meta, "roleRef": ref, "subjects": [subject]}
        )

    named = [{"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["v-chap"]}]
    chap_read = [named[0] | {"verbs": ["get"]}]
    # What the operator itself holds (so RBAC would let it grant this): every Secret.
    every_secret = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]

    def refused_wide_role() -> str:
        return as_user(cluster, OPERATOR_SA, *apply, input=role("kubenova-chap-h1", every_secret))

    wide = eventually(refused_wide_role, timeout=30, what="the CHAP grant policy")
    other_name = as_user(cluster, OPERATOR_SA, *apply, input=role("reader", chap_read))
    # Made for real: binding a Role checks the binder holds the rights of the Role.
    made = [a for a in apply if a != "--dry-run=server"]
    good_role = as_user(cluster, OPERATOR_SA, *made, input=role("kubenova-chap-h1", chap_read))
    other_user = as_user(
        cluster, OPERATOR_SA, *apply,
        input=binding("kubenova-chap-h1", "kubenova-chap-h1", "kubenova:agent:h2"),
    )  # fmt: skip
    good_binding = as_user(
        cluster, OPERATOR_SA, *apply,
        input=binding("kubenova-chap-h1", "kubenova-chap-h1", "kubenova:agent:h1"),
    )  # fmt: skip

    cluster.kubectl("delete", "role", "kubenova-chap-h1", "-n", "default", check=False)
    assert "grants only get on named Secrets" in wide
    assert "only the Roles and RoleBindings kubenova-chap-<host>" in other_name
    assert "binds its own Role to the one user" in other_user
    assert (good_role, good_binding) == ("", "")
