"""The chart lints, refuses bad values, renders objects the real API server accepts, and ships
the CRDs of crds/ unchanged."""

from __future__ import annotations

import filecmp
import json
import re
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess
from tests.integration.chart.conftest import (
    CHART,
    NAMESPACE,
    REPO,
    VALUE_SETS,
    Helm,
    documents,
    server_version,
)

KUBENOVA_CRDS = REPO / "crds"


def policy_documents() -> list[dict[str, Any]]:
    """The static admission policies of policies/*.yaml, one document each."""
    return [
        doc
        for path in sorted((CHART / "policies").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def yaml_stream(docs: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(docs, sort_keys=False)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_helm_lint_strict_passes(helm: Helm, values: Path | None) -> None:
    args = ["lint", "--strict", str(CHART), "-n", NAMESPACE]
    if values is not None:
        args.append(f"--values={values}")
    result = helm.run(*args, check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout
    assert "[WARNING]" not in result.stdout
    assert "[ERROR]" not in result.stdout


@pytest.mark.parametrize(
    ("settings", "complaint"),
    [
        (["operator.replicas=2"], "operator.replicas: Must be less than or equal to 1"),
        (["database.type=mysql"], "database.type"),
        (["agent.domainType=xen"], "agent.domainType"),
        (["agent.pools[0].services={storage}"], "services"),
        (["objectStore.endpoint=s3.example.org"], "objectStore.endpoint"),
        (["auth.backend=ldap"], "auth.ldap"),
        (
            [
                "auth.backend=ldap",
                "auth.ldap.url=ldap://ldap.example.org",
                "auth.ldap.users.baseDN=ou=p",
                "auth.ldap.groups.baseDN=ou=g",
            ],
            "auth.ldap.url: Does not match pattern '^ldaps://'",
        ),  # clear-text binds need startTLS or an explicit insecure: true
        (["operator.nodSelector.a=b"], "operator"),  # misspelt keys are refused too
    ],
)
def test_values_the_schema_refuses(helm: Helm, settings: list[str], complaint: str) -> None:
    args = ["template", "kubenova", str(CHART), "-n", NAMESPACE, "--kube-version=1.33.0"]
    result = helm.run(*args, *(f"--set={s}" for s in settings), check=False)

    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr
    assert complaint in result.stderr


def test_two_replicas_are_allowed_on_postgresql(helm: Helm) -> None:
    rendered = helm.template(
        None,
        "--set=operator.replicas=2",
        "--set=database.type=postgresql",
        "--set=database.postgresql.existingSecret=db",
        kube_version="1.33.0",
    )
    deployment = next(d for d in documents(rendered) if d["kind"] == "Deployment")

    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    # The replicas elect a leader through a Lease: nothing of kopf's peering is left.
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [arg for arg in args if arg.startswith("--peering")]
    assert "ClusterKopfPeering" not in {doc["kind"] for doc in documents(rendered)}


def test_the_webhook_is_reached_through_a_service_with_a_shared_renewed_certificate(
    helm: Helm,
) -> None:
    rendered = documents(
        helm.template(
            None,
            "--set=operator.replicas=2",
            "--set=database.type=postgresql",
            "--set=database.postgresql.existingSecret=db",
            "--set=webhook.certValiditySeconds=86400",
            "--set=webhook.renewBeforeSeconds=3600",
            kube_version="1.33.0",
        )
    )
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--webhook-service=kubenova-system/kubenova-operator-webhook" in args
    assert "--webhook-tls-secret=kubenova-webhook-tls" in args
    assert "--webhook-cert-validity=86400" in args
    assert "--webhook-cert-renew-before=3600" in args
    # Owned by the operator's ClusterRole: uninstalling the chart deletes the role, and the
    # garbage collector the webhook configurations.
    assert "--webhook-owner=kubenova-operator" in args
    [service] = [
        d
        for d in rendered
        if d["kind"] == "Service" and d["metadata"]["name"] == "kubenova-operator-webhook"
    ]
    assert service["spec"]["ports"] == [
        {"name": "webhook", "port": 443, "targetPort": "webhook", "protocol": "TCP"}
    ]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert "clusterIP" not in service["spec"]  # a virtual IP: any ready replica answers


def test_the_chart_refuses_another_namespace(helm: Helm) -> None:
    result = helm.run(
        "template", "kubenova", str(CHART), "-n", "default", "--kube-version=1.33.0", check=False
    )

    assert result.returncode != 0
    assert "install kubenova into the namespace kubenova-system" in result.stderr


@pytest.mark.apiserver
@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_object_is_accepted_by_the_api_server(
    helm: Helm, apiserver: ClusterAccess, crds_installed: list[str], values: Path | None
) -> None:
    rendered = helm.template(values, kube_version=server_version(apiserver))
    objects = documents(rendered)
    # The release namespace, and tenant namespaces the values name (chapSecrets).
    for namespace in {doc["metadata"].get("namespace") for doc in objects} - {None}:
        apiserver.kubectl("create", "namespace", namespace, check=False)

    # create, not apply: each object is validated as new, whatever a release left behind.
    # The static admission policies (policies/*.yaml) are already installed in this plane
    # (crds_installed installs the very same files), so they are validated as an update.
    installed = {(doc["kind"], doc["metadata"]["name"]) for doc in policy_documents()}
    fresh = [doc for doc in objects if (doc["kind"], doc["metadata"]["name"]) not in installed]
    shared = [doc for doc in objects if (doc["kind"], doc["metadata"]["name"]) in installed]
    assert len(shared) == len(installed), "the chart must ship every file of policies/"
    result = apiserver.kubectl(
        "create", "--dry-run=server", "-o", "name", "-f", "-", input=yaml_stream(fresh), check=False
    )
    assert result.returncode == 0, result.stderr
    updated = apiserver.kubectl(
        "apply", "--server-side", "--force-conflicts", "--field-manager=chart-render-test",
        "--dry-run=server", "-o", "name", "-f", "-", input=yaml_stream(shared), check=False,
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    accepted = result.stdout.split() + updated.stdout.split()
    assert len(accepted) == len(objects) >= 15
    kinds = {doc["kind"] for doc in objects}
    assert {
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "DaemonSet",
        "Service",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    } <= kinds


def test_the_chart_crds_are_the_generated_ones() -> None:
    """One source: charts/kubenova/crds holds exactly crds/*.yaml, byte for byte."""
    ours = sorted(p.name for p in KUBENOVA_CRDS.glob("*.yaml"))
    in_chart = sorted(p.name for p in (CHART / "crds").glob("*.yaml"))

    assert ours, "crds/ is empty: run `kubenova crds render`"
    assert in_chart == ours, (
        "the chart's crds/ differs from crds/: run `kubenova crds render` (it writes both)"
    )
    match, mismatch, errors = filecmp.cmpfiles(KUBENOVA_CRDS, CHART / "crds", ours, shallow=False)
    assert (mismatch, errors) == ([], []), "stale chart CRDs: run `kubenova crds render`"
    assert len(match) == len(ours)


def test_the_packaged_chart_carries_the_crds_and_schema(helm: Helm, tmp_path: Path) -> None:
    helm.run("package", str(CHART), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("kubenova-*.tgz")

    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        for crd in KUBENOVA_CRDS.glob("*.yaml"):
            member = tar.extractfile(f"kubenova/crds/{crd.name}")
            assert member is not None, crd.name
            assert member.read() == crd.read_bytes(), crd.name
        assert not [n for n in names if n.startswith("kubenova/crds/") and "kopf" in n]
        assert "kubenova/values.schema.json" in names
        assert "kubenova/README.md" in names


KEY = re.compile(r"^([A-Za-z0-9_./-]+):(\s|$)")


def key_lines(text: str) -> dict[str, bool]:
    """Dotted path of every key in a values file -> whether a comment sits right above it."""
    found: dict[str, bool] = {}
    stack: list[tuple[int, str]] = []
    commented = False
    for raw in text.splitlines():
        content = raw.lstrip()
        indent = len(raw) - len(content)
        if not content:
            commented = False
            continue
        if content.startswith("#"):
            commented = True
            continue
        if content.startswith("- "):
            while stack and stack[-1][0] >= indent:
                stack.pop()
            stack.append((indent, "[]"))
            content, indent = content[2:], indent + 2
            if content.startswith("#"):
                commented = True
                continue
        match = KEY.match(content)
        if match:
            while stack and stack[-1][0] >= indent:
                stack.pop()
            path = ".".join([key for _, key in stack] + [match.group(1)])
            found[path] = commented
            stack.append((indent, match.group(1)))
        commented = False
    return found


def schema_settings(node: dict[str, Any], path: str = "") -> dict[str, dict[str, Any]]:
    """Dotted path -> schema of every setting (a property that is not a section of settings)."""
    settings: dict[str, dict[str, Any]] = {}
    for key, child in node.get("properties", {}).items():
        child_path = f"{path}.{key}" if path else key
        items = child.get("items", {})
        if "properties" in child:
            settings |= schema_settings(child, child_path)
        elif child.get("type") == "array" and "properties" in items:
            settings[child_path] = child
            settings |= schema_settings(items, f"{child_path}.[]")
        else:
            settings[child_path] = child
    return settings


def test_values_yaml_documents_every_value() -> None:
    """Each setting in values.yaml has a comment above it, and a description in the schema."""
    lines = key_lines((CHART / "values.yaml").read_text())
    schema = json.loads((CHART / "values.schema.json").read_text())
    settings = schema_settings(schema)

    undocumented = sorted(path for path in settings if path in lines and not lines[path])
    undescribed = sorted(path for path, node in settings.items() if not node.get("description"))
    assert undocumented == [], "add a `# -- ...` comment above these in values.yaml"
    assert undescribed == [], "add a description to these in values.schema.json"
    assert len([path for path in settings if path in lines]) >= 60


def test_every_value_is_in_the_schema() -> None:
    """values.schema.json forbids unknown keys, so the defaults must all be declared."""
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    schema = yaml.safe_load((CHART / "values.schema.json").read_text())

    def walk(value: object, node: dict[str, object], path: str) -> list[str]:
        missing = []
        if isinstance(value, dict) and node.get("type") == "object":
            properties = node.get("properties", {})
            assert isinstance(properties, dict)
            for key, child in value.items():
                if key not in properties:
                    if node.get("additionalProperties") is False:
                        missing.append(f"{path}.{key}")
                    continue
                missing += walk(child, properties[key], f"{path}.{key}")
        return missing

    assert walk(values, schema, "") == []


@pytest.mark.parametrize(
    ("domain_type", "mounted"), [("auto", True), ("kvm", True), ("qemu", False)]
)
def test_dev_kvm_is_mounted_only_as_the_device_never_created(
    helm: Helm, domain_type: str, mounted: bool
) -> None:
    rendered = documents(
        helm.template(None, f"--set=agent.domainType={domain_type}", kube_version="1.33.0")
    )
    [daemonset] = [d for d in rendered if d["kind"] == "DaemonSet"]
    pod = daemonset["spec"]["template"]["spec"]
    kvm = [v for v in pod["volumes"] if v.get("hostPath", {}).get("path") == "/dev/kvm"]
    mounts = [m for m in pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/dev/kvm"]

    if mounted:
        assert [v["hostPath"]["type"] for v in kvm] == ["CharDevice"]
        assert len(mounts) == 1
    else:
        assert kvm == mounts == []


def test_volume_pools_reach_the_hosts_tgtd_through_its_socket_directory(helm: Helm) -> None:
    pools = (
        '[{"name":"compute","services":["compute"]},'
        '{"name":"storage","services":["volume"],"nodeSelector":{"kubenova.io/storage":"true"}}]'
    )
    rendered = documents(
        helm.template(
            None,
            f"--set-json=agent.pools={pools}",
            "--set=agent.tgtSocketDir=/run/tgt-sockets",
            "--set=agent.tgtControlPort=7",
            kube_version="1.33.0",
        )
    )
    pods = {
        d["metadata"]["name"]: d["spec"]["template"]["spec"]
        for d in rendered
        if d["kind"] == "DaemonSet"
    }

    def tgtd(pod: dict[str, Any]) -> tuple[list[Any], list[Any], list[str]]:
        volumes = [v["hostPath"] for v in pod["volumes"] if v["name"] == "tgtd"]
        container = pod["containers"][0]
        mounts = [m["mountPath"] for m in container["volumeMounts"] if m["name"] == "tgtd"]
        flags = [a for a in container["args"] if a.startswith("--tgt-control-port")]
        return volumes, mounts, flags

    # tgtadm looks in /var/run/tgtd whatever the host calls the directory.
    assert tgtd(pods["kubenova-agent-storage"]) == (
        [{"path": "/run/tgt-sockets", "type": "DirectoryOrCreate"}],
        ["/var/run/tgtd"],
        ["--tgt-control-port=7"],
    )
    assert tgtd(pods["kubenova-agent-compute"]) == ([], [], [])
