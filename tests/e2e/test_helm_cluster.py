"""kubenova as users run it: images built from the Dockerfile, `helm install` on a real kubelet,
and a real TCG guest booted through the agent pod.

One module-scoped node (kubenova/devcluster/node.py: kubelet, containerd, kube-proxy,
CoreDNS and the control plane in a network namespace of the run's own), the two images
from hack/build-images.sh imported into its containerd, and beside the kubelet what a
compute host runs itself: a private libvirtd and tgtd in the node's namespace, MinIO on the
host end of its veth. The chart is installed with its defaults but the registry, the pull
policy, the node label, domainType qemu (no KVM here), one pool running every service, the
object store and the paths of those daemons. Then an Image, a Network, a Volume and an
Instance by kubectl boot a guest (DHCP lease, iSCSI volume), `helm upgrade` keeps it running,
`kubectl delete` and `helm uninstall` leave nothing behind. Cold, the images and the Go
binaries take many minutes; both are cached by content/version under ~/.cache/kubenova,
after which the module takes a few minutes (docs/kubelet-cluster.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from kubenova.devcluster.binaries import cache_bin_dir, find_checkout
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.node import NODE_NAME, KubeletCluster
from kubenova.devcluster.objectstore import ObjectStore, ObjectStoreAccess, ensure_minio
from kubenova.devcluster.tgtd import PrivateTgtd
from kubenova.operator import inventory as inv
from kubenova.operator.inventory.consumers import list_consumers
from tests.builders import a_flavor, a_network, a_volume, an_instance, as_yaml
from tests.fixtures.test_image import GuestImage, build_test_image

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
GUEST_NAMESPACE = "guests"
GUEST_IMAGE = "busybox-pod"
TICK_MS = 500


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
    tgtd: PrivateTgtd
    store: ObjectStore
    guest_image: GuestImage
    state_dir: Path
    started: float
    timings: dict[str, float]
    links_before_install: set[str] = field(default_factory=set)
    # What the guest test leaves for the upgrade and delete tests.
    guest: dict[str, Any] = field(default_factory=dict)

    @property
    def s3(self) -> ObjectStoreAccess:
        return self.store.access()

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
        result = subprocess.run(
            [str(helm), "--kubeconfig", str(self.cluster.kubeconfig), "-n", NAMESPACE, *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=400,
        )
        assert result.returncode == 0, f"helm {args[0]}: {result.stderr[-3000:]}"

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
    """The node, and what a compute host runs beside its kubelet: libvirtd and tgtd in the
    node's network namespace (the agent pod, hostNetwork, shares it), their sockets on host
    paths the chart mounts; MinIO on the host end of the node's veth, reached by route."""
    root = tmp_path_factory.mktemp("kubelet")
    cluster = KubeletCluster(root / "node")
    libvirtd = PrivateLibvirtd(root / "libvirtd", netns=cluster.netns)
    tgtd = PrivateTgtd(root / "tgtd", netns=cluster.netns, portal_host=cluster.addresses.node_ip)
    store = ObjectStore(
        root / "s3", binary=ensure_minio(progress=print), address=cluster.addresses.host_ip
    )
    run = Installed(
        cluster,
        libvirtd,
        tgtd,
        store,
        build_test_image(),
        root / "agent-state",
        time.monotonic(),
        {},
    )
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
        tgtd.start()
        store.up()
        run.mark("libvirtd, tgtd and MinIO serving the node")
        inventory = root / "inventory"
        inventory.mkdir()
        os.chown(inventory, OPERATOR_UID, OPERATOR_UID)  # the operator runs as this uid
        (root / "pv.json").write_text(json.dumps(_persistent_volume(inventory)))
        run.kubectl("apply", "-f", str(root / "pv.json"))
        run.kubectl("label", "node", NODE_NAME, "kubenova.io/compute=true")
        # Before the install: the chart grants the agents this namespace's CHAP Secrets.
        run.kubectl("create", "namespace", GUEST_NAMESPACE)
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
        # libvirtd and tgtd live in the node's namespace: stopped before it goes, the
        # guests before tgtd (a live session would hang the target's deletion).
        libvirtd.stop()
        tgtd.stop()
        cluster.down()
        store.down()
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
    """Chart defaults but the registry, the node's settings (no KVM: TCG; one node runs
    every service), where its libvirtd and tgtd are, and the image store."""
    checkout = find_checkout()
    assert checkout is not None
    values = {
        "image": {"registry": REGISTRY, "pullPolicy": "Never"},
        "agent": {
            "stateDir": str(run.state_dir),
            "libvirtSocketDir": str(run.libvirtd.socket_path.parent),
            "tgtControlPort": run.tgtd.control_port,
            "domainType": "qemu",
            "chapSecrets": {"namespaces": [GUEST_NAMESPACE]},
            "pools": [
                {
                    "name": "compute",
                    "services": ["compute", "network", "volume"],
                    "availabilityZone": "nova",
                    "nodeSelector": {"kubenova.io/compute": "true"},
                }
            ],
        },
        "objectStore": {
            "endpoint": run.s3.url,
            "accessKey": run.s3.access_key,
            "secretKey": run.s3.secret_key,
        },
    }
    path = run.state_dir.parent / "values.json"  # JSON is YAML; the keys stay off argv
    path.touch(mode=0o600)
    path.write_text(json.dumps(values))
    args = [str(checkout / "charts" / "kubenova"), "-f", str(path), "--wait", "--timeout", "300s"]
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


def _wait(what: str, ok: Callable[[], Any], timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := ok()):
        assert time.monotonic() < deadline, f"no {what} after {timeout:.0f} s"
        time.sleep(0.5)
    return value


def _in_guests(run: Installed, kind: str, name: str) -> dict[str, Any] | None:
    out = run.kubectl("get", kind, name, "-n", GUEST_NAMESPACE, "-o", "json", "--ignore-not-found")
    return json.loads(out) if out.strip() else None


def _console(run: Installed) -> str:
    path = Path(run.guest["console"])
    return path.read_text(errors="replace") if path.exists() else ""


def _ticks(console: str) -> list[int]:
    return [int(n) for n in re.findall(r"KUBENOVA-TICK (\d+)", console)]


def _virsh(run: Installed, *args: str) -> str:
    return subprocess.run(
        ["virsh", "-c", run.libvirtd.uri, *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _claims(run: Installed) -> list[tuple[str, ...]]:
    """The operator's inventory claims (its SQLite file on the node's PersistentVolume)."""
    (database,) = (run.state_dir.parent / "inventory").glob("*.db")
    engine = inv.make_engine(f"sqlite:///{database}")
    try:
        return sorted((c.kind, c.namespace, c.name, c.uid, c.host) for c in list_consumers(engine))
    finally:
        engine.dispose()


def _upload_guest_image(run: Installed) -> None:
    image = run.guest_image
    env = {**os.environ, **run.s3.env(), "KUBECONFIG": str(run.cluster.kubeconfig)}
    # -P: the worktree's operator/ must not shadow the standard library's operator.
    result = subprocess.run(
        [
            sys.executable, "-P", "-m", "kubenova.cli", "image", "upload", str(image.disk_qcow2),
            "--name", GUEST_IMAGE, "--bucket", "images", "--min-memory", "96",
            "--kernel", str(image.kernel), "--initrd", str(image.initrd),
            "--cmdline", image.cmdline,
        ],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]


def test_a_real_guest_boots_through_the_agent_pod(installed: Installed) -> None:
    """Image, Network, Volume, Instance by kubectl: the agent pod defines a TCG domain on
    the node's libvirtd, its dnsmasq leases the inventory's address, its volume service
    exports the Volume from the node's tgtd and QEMU attaches it over iSCSI."""
    run = installed
    _upload_guest_image(run)
    manifests = as_yaml(
        a_flavor("pod.tiny", memory=128),
        a_network("net", GUEST_NAMESPACE, mode="vxlan", cidr="10.78.0.0/24"),
        a_volume("data", GUEST_NAMESPACE, sizeGiB=1),
        an_instance(
            "guest",
            GUEST_NAMESPACE,
            flavor="pod.tiny",
            image=GUEST_IMAGE,
            networks=[{"network": "net"}],
            volumes=[{"volume": "data"}],
            userData=f"#cloud-config\nkubenova-test-tick-ms: {TICK_MS}\n",
        ),
    )
    path = run.state_dir.parent / "guest.yaml"
    path.write_text(manifests)
    run.kubectl("apply", "-f", str(path))

    def running() -> dict[str, Any] | None:
        body = _in_guests(run, "instance", "guest")
        phase = ((body or {}).get("status") or {}).get("phase")
        assert phase != "Error", json.dumps(body["status"] if body else None)
        return body if phase == "Running" else None

    body = _wait("Instance Running", running, timeout=300)
    run.mark("first guest Running")
    seconds = round(run.timings["first guest Running"], 1)
    print(json.dumps({"empty_node_to_first_guest_running_s": seconds}), flush=True)
    uid = body["metadata"]["uid"]
    run.guest.update(uid=uid, console=body["status"]["console"]["logPath"])
    assert body["status"]["domain"]["type"] == "qemu"
    run.guest["domid"] = _virsh(run, "domid", f"kubenova-{uid}")
    address = body["status"]["addresses"][0]
    lease = f"KUBENOVA-LEASE interface=eth0 ip={address['ip']} mask=24"
    sectors = 2 * 1024 * 1024  # 1 GiB in 512-byte sectors
    disk = re.compile(rf"KUBENOVA-BLOCK vd[b-z] sectors={sectors}|KUBENOVA-BLOCK-ADDED vd[b-z]")
    try:
        _wait("boot marker", lambda: run.guest_image.ready_marker in _console(run), 120)
        _wait("DHCP lease of the inventory's address", lambda: lease in _console(run), 120)
        _wait("the volume on the guest's console", lambda: disk.search(_console(run)), 120)
    except AssertionError as error:
        raise AssertionError(f"{error}\nconsole:\n{_console(run)[-2000:]}") from None

    def in_use() -> dict[str, Any] | None:
        volume = _in_guests(run, "volume", "data")
        return volume if ((volume or {}).get("status") or {}).get("phase") == "InUse" else None

    volume = _wait("Volume InUse", in_use)
    assert volume["status"]["target"]["portal"] == f"{run.cluster.addresses.node_ip}:3260"
    assert volume["status"]["target"]["iqn"] in run.tgtd.target_names()
    assert _ticks(_console(run)), "the guest's clock ticks on its console"


def test_helm_upgrade_to_a_new_tag_keeps_the_claims_and_the_running_guest(
    installed: Installed,
) -> None:
    run = installed
    assert run.guest, "the guest test boots the guest"
    host_before = run.json("get", "hosts.kubenova.io", NODE_NAME)["metadata"]["uid"]
    claims_before = _claims(run)
    assert claims_before
    tick_before = max(_ticks(_console(run)))

    run.helm("upgrade", "kubenova", *_chart_args(run, UPGRADE_TAG))
    run.mark("helm upgrade --wait: pods rolled to the new tag")

    pods = run.json("get", "pods", "-n", NAMESPACE)["items"]
    images = {c["image"] for p in pods for c in p["spec"]["containers"]}
    assert images == {
        f"{REGISTRY}/kubenova-operator:{UPGRADE_TAG}",
        f"{REGISTRY}/kubenova-agent:{UPGRADE_TAG}",
    }
    assert run.json("get", "hosts.kubenova.io", NODE_NAME)["metadata"]["uid"] == host_before
    # The same QEMU: same domain id, and the guest's counter goes on without a reboot.
    assert _virsh(run, "domid", f"kubenova-{run.guest['uid']}") == run.guest["domid"]
    _wait("a guest tick after the upgrade", lambda: max(_ticks(_console(run))) > tick_before + 2)
    console = _console(run)
    assert console.count(run.guest_image.ready_marker) == 1, "the guest rebooted"
    assert _in_guests(run, "instance", "guest")["status"]["phase"] == "Running"  # type: ignore[index]
    assert _in_guests(run, "volume", "data")["status"]["phase"] == "InUse"  # type: ignore[index]
    assert _claims(run) == claims_before


def test_kubectl_delete_removes_the_domain_the_target_and_the_bridge(installed: Installed) -> None:
    run = installed
    uid = run.guest["uid"]
    for kind, name in (("instance", "guest"), ("volume", "data"), ("network", "net")):
        run.kubectl("delete", kind, name, "-n", GUEST_NAMESPACE, "--timeout=180s")
    run.mark("guest, volume and network deleted")

    assert f"kubenova-{uid}" not in _virsh(run, "list", "--all", "--name").split()
    assert run.tgtd.target_names() == []
    assert run.links() - run.links_before_install == set()
    _wait("claims released", lambda: _claims(run) == [], timeout=60)


def test_helm_uninstall_leaves_no_pods_webhooks_secrets_leases_or_devices(
    installed: Installed,
) -> None:
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
    assert installed.tgtd.target_names() == []
    # The webhook's TLS Secret is the operator's too, owned by the same ClusterRole.
    _wait(
        "webhook TLS Secret gone",
        lambda: (
            not installed.kubectl(
                "get", "secret", "kubenova-webhook-tls", "-n", NAMESPACE, "--ignore-not-found"
            ).strip()
        ),
        timeout=60,
    )
    # Nothing else the operator or the agents made: their Leases are owned by their
    # ServiceAccounts, which helm deleted (only what Kubernetes puts in every namespace stays).
    kept = {"configmap/kube-root-ca.crt", "serviceaccount/default"}

    def left() -> set[str]:
        return set(
            installed.kubectl(
                "get", "secrets,configmaps,services,serviceaccounts,leases,roles,rolebindings",
                "-n", NAMESPACE, "-o", "name",
            ).split()
        ) - kept  # fmt: skip

    try:
        _wait("an empty system namespace", lambda: not left(), timeout=60)
    except AssertionError as error:
        raise AssertionError(f"{error}: {sorted(left())}") from None
