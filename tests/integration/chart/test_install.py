"""`helm install` into the real API server creates every object of the release, and the
commands the chart runs exist with the flags it passes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.operator.auth import AuthConfig
from tests.integration.chart.conftest import NAMESPACE, VALUE_SETS, Helm, Release, documents

BIN = Path(sys.executable).parent


@pytest.mark.apiserver
def test_helm_install_creates_every_object(release: Release) -> None:
    cluster = release.cluster
    manifest = "\n---\n".join(json.dumps(doc) for doc in release.manifest)

    result = cluster.kubectl("get", "-f", "-", "-o", "name", input=manifest, check=False)

    assert result.returncode == 0, result.stderr
    found = result.stdout.split()
    assert len(found) == len(release.manifest) >= 20
    kinds = {doc["kind"] for doc in release.manifest}
    assert {"Deployment", "DaemonSet", "ValidatingAdmissionPolicy"} <= kinds


@pytest.mark.apiserver
def test_the_installed_workloads_are_what_the_values_say(release: Release) -> None:
    cluster = release.cluster
    deployment = json.loads(
        cluster.kubectl(
            "get", "deployment", "kubenova-operator", "-n", NAMESPACE, "-o", "json"
        ).stdout
    )
    daemonset = json.loads(
        cluster.kubectl(
            "get", "daemonset", "kubenova-agent-compute", "-n", NAMESPACE, "-o", "json"
        ).stdout
    )
    pod = deployment["spec"]["template"]["spec"]
    agent = daemonset["spec"]["template"]["spec"]

    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # SQLite: one writer
    assert pod["serviceAccountName"] == "kubenova-operator"
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert [c["command"] for c in pod["initContainers"]] == [["kubenova", "db", "upgrade"]]
    assert agent["hostNetwork"] is True
    assert agent["containers"][0]["securityContext"]["privileged"] is True
    assert agent["nodeSelector"] == {"kubenova.io/compute": "true"}
    mounts = {m["mountPath"] for m in agent["containers"][0]["volumeMounts"]}
    assert {"/var/lib/kubenova", "/var/run/libvirt", "/dev/kvm"} <= mounts
    for spec in (pod, agent):
        for container in spec["containers"]:
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
            assert container["ports"][0]["containerPort"] == 8080


def containers(rendered: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for doc in rendered:
        if doc["kind"] in ("Deployment", "DaemonSet"):
            spec = doc["spec"]["template"]["spec"]
            found += spec.get("initContainers", []) + spec["containers"]
    return found


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_flag_the_chart_passes_exists(helm: Helm, values: Path | None) -> None:
    """The commands the pods run are installed console scripts that know each flag."""
    rendered = documents(helm.template(values, kube_version="1.33.0"))
    checked = 0
    for container in containers(rendered):
        command = container["command"]
        script = BIN / command[0]
        assert script.exists(), f"{command[0]} is not a console script of the package"
        helped = subprocess.run(
            [str(script), *command[1:], "--help"],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        assert helped.returncode == 0, helped.stderr
        for arg in container.get("args", []):
            flag = re.match(r"^(--[a-z0-9-]+)", arg)
            assert flag is not None, arg
            assert flag.group(1) in helped.stdout, f"{command[0]} has no {flag.group(1)}"
            checked += 1
    assert checked >= 15


def test_the_ldap_settings_render_a_valid_auth_config(helm: Helm) -> None:
    rendered = documents(helm.template(VALUE_SETS["postgres-ldap-values"], kube_version="1.33.0"))
    (config_map,) = [d for d in rendered if d["kind"] == "ConfigMap"]

    config = AuthConfig.model_validate(yaml.safe_load(config_map["data"]["auth.yaml"]))

    assert config.backend == "ldap"
    assert config.ldap is not None
    assert config.ldap.bind_password_file == Path("/etc/kubenova/ldap/password")
    assert [r.group for r in config.ldap.group_roles][-1] == "ops"
    deployment = next(d for d in rendered if d["kind"] == "Deployment")
    operator = deployment["spec"]["template"]["spec"]["containers"][0]
    assert "--auth-config=/etc/kubenova/auth/auth.yaml" in operator["args"]
    mounts = {m["name"]: m["mountPath"] for m in operator["volumeMounts"]}
    assert mounts["ldap-password"] == "/etc/kubenova/ldap"
    assert config.ldap.uses_tls
    assert config.ldap.ca_file == Path("/etc/kubenova/ldap-ca/ca.crt")
    assert mounts["ldap-ca"] == "/etc/kubenova/ldap-ca"
