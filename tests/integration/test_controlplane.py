"""The local control plane: the pinned kube-apiserver serves, RBAC holds, stop leaves nothing."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from kubenova.devcluster import ClusterAccess, ControlPlane, ensure_binaries
from kubenova.devcluster.processes import is_alive, processes_mentioning
from kubenova.kube import KubeClient, load_config
from kubenova.kube.paths import NAMESPACES

pytestmark = pytest.mark.apiserver

PINNED_SERVER_VERSION = "v1.33.5"


def test_server_runs_the_pinned_version(apiserver: ClusterAccess) -> None:
    version = json.loads(apiserver.kubectl("version", "-o", "json").stdout)

    assert version["serverVersion"]["gitVersion"] == PINNED_SERVER_VERSION


def test_admin_kubeconfig_verifies_the_server_certificate(apiserver: ClusterAccess) -> None:
    kubeconfig = apiserver.kubeconfig.read_text()

    assert "certificate-authority-data" in kubeconfig
    assert "insecure-skip-tls-verify" not in kubeconfig
    assert apiserver.url.startswith("https://127.0.0.1:")


def test_admin_can_list_namespaces(apiserver: ClusterAccess) -> None:
    names = apiserver.kubectl("get", "namespaces", "-o", "name").stdout.split()

    assert "namespace/kube-system" in names


def test_a_fresh_user_is_authenticated_but_may_not_list_namespaces(
    apiserver: ClusterAccess,
) -> None:
    alice = apiserver.user_kubeconfig("alice", groups=("kubenova:tenants",))

    whoami = json.loads(apiserver.kubectl("auth", "whoami", "-o", "json", kubeconfig=alice).stdout)
    denied = apiserver.kubectl("get", "namespaces", kubeconfig=alice, check=False)

    assert whoami["status"]["userInfo"]["username"] == "alice"
    assert "kubenova:tenants" in whoami["status"]["userInfo"]["groups"]
    assert denied.returncode != 0
    # Forbidden (403), not Unauthorized (401): authentication worked, RBAC said no.
    assert 'User "alice" cannot list resource "namespaces"' in denied.stderr


def test_rbac_grants_reach_a_group_of_a_minted_user(apiserver: ClusterAccess) -> None:
    bob = apiserver.user_kubeconfig("bob", groups=("kubenova:viewers",))
    # A role of our own: the aggregated view/edit/admin roles stay empty here, because
    # their rules are filled in by kube-controller-manager, which this plane does not run.
    apiserver.kubectl(
        "create",
        "clusterrole",
        "test-namespace-reader",
        "--verb=get,list",
        "--resource=namespaces",
    )
    apiserver.kubectl(
        "create",
        "clusterrolebinding",
        "test-namespace-readers",
        "--clusterrole=test-namespace-reader",
        "--group=kubenova:viewers",
    )

    listed = apiserver.kubectl("get", "namespaces", "-o", "name", kubeconfig=bob)

    assert "namespace/default" in listed.stdout.split()


def test_the_python_client_talks_to_the_admin_endpoint(apiserver: ClusterAccess) -> None:
    async def namespaces() -> set[str]:
        client = KubeClient(load_config(apiserver.kubeconfig), user_agent="test")
        try:
            listing = await client.list(NAMESPACES)
        finally:
            await client.close()
        return {item["metadata"]["name"] for item in listing["items"]}

    assert "kube-system" in asyncio.run(namespaces())


def test_a_plane_starts_quickly_and_stop_leaves_no_process(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "plane", binaries=ensure_binaries())
    started = time.monotonic()
    access = plane.up()
    startup = time.monotonic() - started
    pids = processes_mentioning(str(plane.root), ("etcd", "kube-apiserver"))
    ready = access.kubectl("get", "--raw", "/readyz").stdout.strip()

    stopped = plane.down()

    assert ready == "ok"
    assert len(pids) == 2
    assert sorted(stopped) == ["etcd", "kube-apiserver"]
    assert not [pid for pid in pids if is_alive(pid)]
    assert processes_mentioning(str(plane.root), ("etcd", "kube-apiserver")) == []
    # Measured 2.1-2.4 s here; the bound leaves room for a loaded CI machine.
    assert startup < 15, f"control plane took {startup:.1f} s to become ready"
