"""The Helm chart under test: the helm binary, rendering, and an installed release.

`helm` is v3.18.4 built by hack/controlplane.sh into ~/.cache/kubenova/bin; its caches and
configuration live in a temp dir so tests leave nothing in the home directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubenova.devcluster import ClusterAccess, install_policies
from kubenova.devcluster.binaries import cache_bin_dir, find_checkout
from kubenova.devcluster.kubeconfig import write_kubeconfig
from tests.support.waiting import eventually

REPO = Path(__file__).resolve().parents[3]
CHART = REPO / "charts" / "kubenova"
POLICIES = CHART / "policies"
NAMESPACE = "kubenova-system"
RELEASE = "kubenova"
OPERATOR_SA = f"system:serviceaccount:{NAMESPACE}:kubenova-operator"
AGENT_SA = f"system:serviceaccount:{NAMESPACE}:kubenova-agent"
# Every values file the chart is checked with: the defaults, and each ci/*.yaml beside them.
VALUE_SETS = {"default": None} | {p.stem: p for p in sorted((CHART / "ci").glob("*.yaml"))}


@dataclass(frozen=True)
class Helm:
    """The helm CLI with a private home; `run` raises on failure unless check=False."""

    binary: Path
    home: Path

    def run(
        self, *args: str, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HELM_", "KUBECONFIG"))}
        env |= {
            "HELM_CACHE_HOME": str(self.home / "cache"),
            "HELM_CONFIG_HOME": str(self.home / "config"),
            "HELM_DATA_HOME": str(self.home / "data"),
        }
        argv = [str(self.binary), *args]
        if kubeconfig is not None:
            argv.append(f"--kubeconfig={kubeconfig}")
        result = subprocess.run(
            argv, capture_output=True, text=True, check=False, env=env, timeout=300
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result

    def template(self, values: Path | None = None, *extra: str, kube_version: str) -> str:
        """The rendered manifests of the chart for `values` (None: the defaults)."""
        args = ["template", RELEASE, str(CHART), "-n", NAMESPACE, f"--kube-version={kube_version}"]
        if values is not None:
            args.append(f"--values={values}")
        return self.run(*args, *extra).stdout


@pytest.fixture(scope="session")
def helm() -> Iterator[Helm]:
    """helm from the kubenova binary cache (built by hack/controlplane.sh helm when missing)."""
    binary = cache_bin_dir() / "helm"
    if not binary.exists():
        checkout = find_checkout()
        if checkout is not None:
            subprocess.run([str(checkout / "hack" / "controlplane.sh"), "helm"], check=False)
    if not binary.exists():
        pytest.fail(
            f"helm is not in {binary.parent}: run `hack/controlplane.sh helm` "
            "(builds helm v3.18.4 from the Go module proxy, ~2 min)",
            pytrace=False,
        )
    home = Path(tempfile.mkdtemp(prefix="kubenova-helm-"))
    yield Helm(binary, home)
    shutil.rmtree(home, ignore_errors=True)


def documents(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def server_version(cluster: ClusterAccess) -> str:
    """The API server's version without the leading v (for `helm template --kube-version`)."""
    info = json.loads(cluster.kubectl("version", "-o", "json").stdout)
    return str(info["serverVersion"]["gitVersion"]).lstrip("v")


@dataclass(frozen=True)
class Release:
    """An installed release: what helm rendered for it, and the cluster it is in."""

    cluster: ClusterAccess
    manifest: list[dict[str, Any]]
    values: dict[str, Any]


def install(
    helm: Helm, cluster: ClusterAccess, *set_values: str, values: Path | None = None
) -> Release:
    # The test plane runs under the chart's static policies (crds_installed applies
    # policies/*.yaml): the release brings the very same objects and must own them, so the
    # plane's copies make way for it (and come back in `uninstall`).
    cluster.kubectl("delete", "-f", str(POLICIES), "--ignore-not-found", check=False)
    args = ["install", RELEASE, str(CHART), "-n", NAMESPACE, "--create-namespace"]
    if values is not None:
        args.append(f"--values={values}")
    for item in set_values:
        args.append(item if item.startswith("--") else f"--set={item}")
    try:
        helm.run(*args, kubeconfig=cluster.kubeconfig)
    except BaseException:
        uninstall(helm, cluster)  # puts the plane's policies back for the tests after this one
        raise
    manifest = helm.run(
        "get", "manifest", RELEASE, "-n", NAMESPACE, kubeconfig=cluster.kubeconfig
    ).stdout
    merged = json.loads(
        helm.run(
            "get",
            "values",
            RELEASE,
            "-n",
            NAMESPACE,
            "--all",
            "-o",
            "json",
            kubeconfig=cluster.kubeconfig,
        ).stdout
    )
    return Release(cluster, documents(manifest), merged)


def uninstall(helm: Helm, cluster: ClusterAccess) -> None:
    helm.run("uninstall", RELEASE, "-n", NAMESPACE, kubeconfig=cluster.kubeconfig, check=False)
    install_policies(cluster, POLICIES)  # the plane's own copies again (see `install`)
    # Kept on uninstall by design (the inventory of running instances). No controller-manager
    # runs here to drop its pvc-protection finalizer, so the test does.
    claim = ["pvc", "kubenova-inventory", "-n", NAMESPACE]
    cluster.kubectl(
        "patch", *claim, "--type=merge", "-p", '{"metadata":{"finalizers":null}}', check=False
    )
    cluster.kubectl("delete", *claim, "--ignore-not-found", "--wait=false", check=False)


def policies_enforced(cluster: ClusterAccess, instance: str, namespace: str) -> None:
    """Wait until the API server enforces the chart's admission policies (loaded async)."""

    def refused() -> bool:
        result = cluster.kubectl(
            "patch",
            "instance",
            instance,
            "-n",
            namespace,
            "--dry-run=server",
            f"--as={AGENT_SA}",
            "--type=merge",
            "-p",
            '{"metadata":{"labels":{"kubenova.io/policy-probe":"x"}}}',
            check=False,
        )
        return result.returncode != 0 and "ValidatingAdmissionPolicy" in result.stderr

    eventually(refused, timeout=30, what="the admission policies to be enforced")


def service_account_kubeconfig(
    cluster: ClusterAccess, account: str, path: Path, *, node: str | None = None
) -> Path:
    """A kubeconfig with a fresh token of `account` (kubenova-system), as a pod would have.

    With `node`, the token is bound to that Node (created if missing), like the projected
    token of a pod scheduled there: the API server then names the node in the caller's
    user.extra, which is how the host policy tells one agent from another.
    """
    bound: list[str] = []
    if node is not None:
        body = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": node}}
        cluster.kubectl("apply", "-f", "-", input=json.dumps(body))
        bound = ["--bound-object-kind=Node", f"--bound-object-name={node}"]
    token = cluster.kubectl(
        "create", "token", account, "-n", NAMESPACE, "--duration=2h", *bound
    ).stdout.strip()
    return write_kubeconfig(
        path, server=cluster.url, ca_file=cluster.ca_file, user=account, token=token
    )


# What the installed release is given beyond the defaults: a Secret the agents may read.
RELEASE_SETTINGS = (
    f"agent.readableSecrets[0].namespace={NAMESPACE}",
    "agent.readableSecrets[0].names={images-s3}",
)


@pytest.fixture(scope="module")
def release(helm: Helm, apiserver: ClusterAccess, crds_installed: list[str]) -> Iterator[Release]:
    """The chart installed with (nearly) default values; uninstalled after the module."""
    uninstall(helm, apiserver)  # a release left by an interrupted run
    installed = install(helm, apiserver, *RELEASE_SETTINGS)
    try:
        yield installed
    finally:
        uninstall(helm, apiserver)
        # Published by the operator (not part of the release): it must not outlive the test
        # operators, or every later Instance create would fail calling a dead webhook.
        apiserver.kubectl(
            "delete",
            "validatingwebhookconfiguration,mutatingwebhookconfiguration",
            "kubenova-admission",
            "--ignore-not-found",
            check=False,
        )
