"""kubenova as users run it: images built from the Dockerfile, `helm install` on a real kubelet.

One module-scoped node (kubenova/devcluster/node.py: kubelet, containerd, kube-proxy,
CoreDNS and the control plane in a network namespace of the run's own), the two images
from hack/build-images.sh imported into its containerd, and the chart installed with its
defaults (only the registry, the pull policy, the host paths of a private libvirtd and the
node label differ). Cold, the images and the Go binaries take many minutes; both are cached
by content/version under ~/.cache/kubenova, after which the module takes a few minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster.binaries import cache_bin_dir, find_checkout
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.node import NODE_NAME, KubeletCluster

pytestmark = [
    pytest.mark.apiserver,
    pytest.mark.libvirt,
    pytest.mark.netns,
    pytest.mark.slow,
    # The first test carries the module's setup: cold image and Go builds take long minutes
    # on a loaded 2-core machine; cached, the whole module takes a few minutes.
    pytest.mark.timeout(3000),
]

NAMESPACE = "kubenova-system"
REGISTRY = "kubenova.local"
APP_VERSION = "0.1.0"
UPGRADE_TAG = "upgraded"
OPERATOR_UID = 65532


def _need_root_and_tools() -> None:
    if os.geteuid() != 0:
        pytest.skip("the kubelet cluster runs as root (network namespaces, mounts, cgroups)")
    missing = [
        t for t in ("containerd", "runc", "ctr", "buildah", "mmdebstrap") if not shutil.which(t)
    ]
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: run hack/install-deps.sh", pytrace=False)


@dataclass(frozen=True)
class Images:
    operator: Path
    agent: Path
    key: str


@dataclass
class Installed:
    cluster: KubeletCluster
    libvirtd: PrivateLibvirtd
    state_dir: Path
    started: float
    timings: dict[str, float]
    links_before_install: set[str] = field(default_factory=set)

    def kubectl(self, *args: str, check: bool = True) -> str:
        result = subprocess.run(
            self.cluster.kubectl(*args), capture_output=True, text=True, check=False, timeout=120
        )
        if check and result.returncode:
            raise AssertionError(f"kubectl {' '.join(args)}: {result.stderr}")
        return result.stdout + result.stderr

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl(*args, "-o", "json"))

    def helm(self, *args: str) -> None:
        helm = cache_bin_dir() / "helm"
        subprocess.run(
            [str(helm), "--kubeconfig", str(self.cluster.kubeconfig), "-n", NAMESPACE, *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=400,
        )

    def links(self) -> set[str]:
        """The node's network devices (the agents run in its namespace: hostNetwork), but
        the pods' own veths, which come and go with the pods."""
        out = subprocess.run(
            ["ip", "-n", self.cluster.netns, "-o", "link", "show"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        names = {line.split(":")[1].strip().split("@")[0] for line in out.splitlines()}
        return {name for name in names if not name.startswith("veth")}

    def mark(self, what: str) -> None:
        self.timings[what] = time.monotonic() - self.started
        print(f"[helm-cluster] {self.timings[what]:7.1f} s  {what}", flush=True)


@pytest.fixture(scope="module")
def images() -> Images:
    _need_root_and_tools()
    checkout = find_checkout()
    assert checkout is not None
    started = time.monotonic()
    result = subprocess.run(
        [str(checkout / "hack" / "build-images.sh")],
        check=False,
        capture_output=True,
        text=True,
        timeout=3000,
    )
    assert result.returncode == 0, f"hack/build-images.sh failed:\n{result.stderr[-4000:]}"
    out = result.stdout
    built = dict(line.split("=", 1) for line in out.split())
    print(f"[helm-cluster] images ready in {time.monotonic() - started:.1f} s", flush=True)
    return Images(Path(built["operator"]), Path(built["agent"]), built["ref"])


@pytest.fixture(scope="module")
def installed(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("kubelet")
    cluster = KubeletCluster(root / "node")
    libvirtd = PrivateLibvirtd(root / "libvirtd")
    run = Installed(cluster, libvirtd, root / "agent-state", time.monotonic(), {})
    try:
        cluster.up()
        run.mark("node Ready")
        for archive, name in ((images.operator, "operator"), (images.agent, "agent")):
            cluster.import_image(archive)
            built = f"{REGISTRY}/kubenova-{name}:{images.key}"
            for tag in (APP_VERSION, UPGRADE_TAG):
                subprocess.run(
                    cluster.ctr(
                        "images", "tag", "--force", built, f"{REGISTRY}/kubenova-{name}:{tag}"
                    ),
                    check=True,
                    capture_output=True,
                )
        run.mark("images imported into containerd")
        libvirtd.start()
        inventory = root / "inventory"
        inventory.mkdir()
        os.chown(inventory, OPERATOR_UID, OPERATOR_UID)  # the operator runs as this uid
        (root / "pv.json").write_text(json.dumps(_persistent_volume(inventory)))
        run.kubectl("apply", "-f", str(root / "pv.json"))
        run.kubectl("label", "node", NODE_NAME, "kubenova.io/compute=true")
        yield run
    finally:
        with_cluster = cluster.kubeconfig.exists()
        if with_cluster:
            subprocess.run(
                [
                    str(cache_bin_dir() / "helm"),
                    "--kubeconfig",
                    str(cluster.kubeconfig),
                    "-n",
                    NAMESPACE,
                    "uninstall",
                    "kubenova",
                    "--wait",
                    "--timeout",
                    "60s",
                ],
                capture_output=True,
                check=False,
            )
        cluster.down()
        libvirtd.stop()
        left = cluster.leftovers()
        assert not left, f"the cluster's teardown left {left}"


def _persistent_volume(path: Path) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "kubenova-inventory"},
        "spec": {
            "capacity": {"storage": "1Gi"},
            "accessModes": ["ReadWriteOnce"],
            "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": str(path), "type": "Directory"},
        },
    }


def _chart_args(run: Installed, tag: str | None = None) -> list[str]:
    checkout = find_checkout()
    assert checkout is not None
    args = [
        str(checkout / "charts" / "kubenova"),
        "--set", f"image.registry={REGISTRY}",
        "--set", "image.pullPolicy=Never",
        "--set", f"agent.stateDir={run.state_dir}",
        "--set", f"agent.libvirtSocketDir={run.libvirtd.socket_path.parent}",
        "--wait", "--timeout", "300s",
    ]  # fmt: skip
    return [*args, "--set", f"image.tag={tag}"] if tag else args


def _version_from_pod(run: Installed, name: str, image: str) -> str:
    run.kubectl(
        "run", name, "-n", "default", f"--image={image}", "--image-pull-policy=Never",
        "--restart=Never", "--", "--version",
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        phase = run.json("get", "pod", name, "-n", "default")["status"].get("phase")
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = run.kubectl("logs", name, "-n", "default")
    run.kubectl("delete", "pod", name, "-n", "default", "--wait=false")
    assert phase == "Succeeded", logs
    return logs.strip()


def test_both_images_run_their_entrypoint_under_containerd(installed: Installed) -> None:
    operator = _version_from_pod(
        installed, "op-version", f"{REGISTRY}/kubenova-operator:{APP_VERSION}"
    )
    agent = _version_from_pod(
        installed, "agent-version", f"{REGISTRY}/kubenova-agent:{APP_VERSION}"
    )

    assert operator == f"kubenova-operator, version {APP_VERSION}"
    assert agent == f"kubenova-agent, version {APP_VERSION}"


def test_pods_resolve_cluster_names_through_the_clusters_own_dns(installed: Installed) -> None:
    image = f"{REGISTRY}/kubenova-agent:{APP_VERSION}"
    script = (
        "import socket;print(socket.gethostbyname('kubernetes.default.svc.cluster.local'));"
        "print(open('/etc/resolv.conf').read())"
    )
    installed.kubectl(
        "run", "dns-check", "-n", "default", f"--image={image}", "--image-pull-policy=Never",
        "--restart=Never", "--command", "--", "python3", "-c", script,
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        pod = installed.json("get", "pod", "dns-check", "-n", "default")
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = installed.kubectl("logs", "dns-check", "-n", "default")
    installed.kubectl("delete", "pod", "dns-check", "-n", "default", "--wait=false")
    service = installed.json("get", "service", "kubernetes", "-n", "default")

    assert logs.split()[0] == service["spec"]["clusterIP"], logs
    assert f"nameserver {installed.cluster.addresses.dns_ip}" in logs


def test_helm_install_runs_the_operator_and_the_agent(installed: Installed) -> None:
    installed.links_before_install = installed.links()
    installed.helm("install", "kubenova", *_chart_args(installed), "--create-namespace")
    installed.mark("helm install --wait: operator Deployment and agent DaemonSet Ready")

    deployment = installed.json("get", "deployment", "kubenova-operator", "-n", NAMESPACE)
    daemonset = installed.json("get", "daemonset", "kubenova-agent-compute", "-n", NAMESPACE)
    assert deployment["status"].get("readyReplicas") == 1
    assert daemonset["status"]["numberReady"] == daemonset["status"]["desiredNumberScheduled"] == 1
    host = installed.json("get", "hosts.kubenova.io", NODE_NAME)
    assert host["metadata"]["name"] == NODE_NAME


def test_the_webhook_answers_through_its_service(installed: Installed) -> None:
    """An Instance the CRD schema allows but the webhook refuses: only the served webhook,
    reached by the apiserver through the Service and kube-proxy, says no."""
    config = installed.json("get", "validatingwebhookconfiguration", "kubenova-admission")
    service = config["webhooks"][0]["clientConfig"]["service"]
    assert (service["namespace"], service["name"]) == (NAMESPACE, "kubenova-operator-webhook")
    bad = {
        "apiVersion": "kubenova.io/v1alpha1",
        "kind": "Instance",
        "metadata": {"name": "no-such-flavor", "namespace": "default"},
        "spec": {"flavor": "does-not-exist", "image": "does-not-exist"},
    }
    path = installed.state_dir.parent / "bad-instance.json"
    path.write_text(json.dumps(bad))

    result = installed.kubectl("apply", "-f", str(path), check=False)

    assert re.search(r'admission webhook "[^"]+" denied the request', result), result


def test_helm_upgrade_to_a_new_tag_rolls_the_pods(installed: Installed) -> None:
    host_before = installed.json("get", "hosts.kubenova.io", NODE_NAME)["metadata"]["uid"]

    installed.helm("upgrade", "kubenova", *_chart_args(installed, UPGRADE_TAG))

    pods = installed.json("get", "pods", "-n", NAMESPACE)["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert images == {
        f"{REGISTRY}/kubenova-operator:{UPGRADE_TAG}",
        f"{REGISTRY}/kubenova-agent:{UPGRADE_TAG}",
    }
    assert installed.json("get", "hosts.kubenova.io", NODE_NAME)["metadata"]["uid"] == host_before


def test_helm_uninstall_leaves_no_pods_webhooks_or_devices(installed: Installed) -> None:
    assert installed.links_before_install, "the install test records the node's devices"
    installed.helm("uninstall", "kubenova", "--wait", "--timeout", "120s")

    # The webhook configurations are the operator's, owned by its ClusterRole: the garbage
    # collector (kube-controller-manager) deletes them once helm deleted the role.
    deadline = time.monotonic() + 120
    while True:
        pods = installed.json("get", "pods", "-n", NAMESPACE)["items"]
        webhooks = [
            f"{kind}/{item['metadata']['name']}"
            for kind in ("validatingwebhookconfigurations", "mutatingwebhookconfigurations")
            for item in installed.json("get", kind)["items"]
        ]
        if not pods and not webhooks:
            break
        assert time.monotonic() < deadline, (
            f"left after uninstall: {[p['metadata']['name'] for p in pods]} {webhooks}"
        )
        time.sleep(1)
    installed.mark("helm uninstall: no pods, no webhook configuration")
    assert installed.links() - installed.links_before_install == set()
