"""A real single-node Kubernetes cluster, for the e2e tests and `kubenova dev node`.

etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kube-proxy, CoreDNS,
containerd and the kubelet all run as root inside one network namespace of the run's own
(`nsenter --net`, so they still share the host's mount namespace: the kubelet's volume
mounts must be visible to containerd). The namespace reaches the host over a veth pair whose
/30 is derived from the state directory, so every address a test talks to is one this run
created: the node IP, the pod bridge, the Service range, the DNS server. kube-proxy's nft
tables, the pod bridge and ip_forward live and die with the namespace.

What the kubelet and containerd insist on writing outside the state directory, whatever
their flags say (recorded before the first start, restored or removed by `down()`): the
sysctls vm.overcommit_memory, kernel.panic, kernel.panic_on_oops; /var/lib/kubelet,
/var/log/containers, /var/lib/cni, /run/containerd; the cgroups kubepods and k8s.io.

The apiserver serves a self-signed certificate (its --cert-dir) and one static admin token:
a throwaway test cluster, never an installation.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubenova.devcluster.binaries import cache_bin_dir, find_checkout
from kubenova.devcluster.errors import ControlPlaneError
from kubenova.devcluster.processes import ProcessSpec, launch, live_pid, log_tail, stop_pid

NODE_NAME = "kn-node"
PAUSE_IMAGE = "kubenova.local/pause:v1"
ADMIN_TOKEN_USER = "kubenova-admin"
NODE_COMPONENTS = (
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kube-proxy",
    "kubelet",
    "coredns",
    "pause",
)
# Paths the kubelet/containerd/libcni create whatever their flags: removed at teardown when
# they did not exist before the first start.
HOST_PATHS = ("/var/lib/kubelet", "/var/log/containers", "/var/lib/cni", "/run/containerd")
SYSCTLS = ("vm/overcommit_memory", "kernel/panic", "kernel/panic_on_oops")
CGROUPS = ("kubepods", "k8s.io")
CNI_BIN_DIR = "/usr/lib/cni"


@dataclass(frozen=True)
class Addresses:
    """The run's addresses, derived from its state directory (distinct runs, distinct nets)."""

    index: int

    @property
    def host_ip(self) -> str:
        return f"10.231.{self.index}.1"

    @property
    def node_ip(self) -> str:
        return f"10.231.{self.index}.2"

    @property
    def pod_cidr(self) -> str:
        return f"10.232.{self.index}.0/24"

    @property
    def service_cidr(self) -> str:
        return f"10.233.{self.index}.0/24"

    @property
    def dns_ip(self) -> str:
        return self.node_ip  # CoreDNS listens on the node IP; pods reach it via the bridge


def node_binaries() -> dict[str, Path]:
    """The cached binaries. From a checkout `hack/controlplane.sh` runs every time: it builds
    only what its cache lacks (on demand, so `make demo` never pays for the node's builds)
    and points each name at the build its pins ask for (CoreDNS's key holds its plugins)."""
    bin_dir = cache_bin_dir()
    checkout = find_checkout()
    if checkout is not None:
        script = checkout / "hack" / "controlplane.sh"
        subprocess.run([str(script), *NODE_COMPONENTS], check=True)
    missing = [n for n in NODE_COMPONENTS if not os.access(bin_dir / n, os.X_OK)]
    if missing:
        raise ControlPlaneError(f"missing {', '.join(missing)} in {bin_dir}")
    return {name: bin_dir / name for name in NODE_COMPONENTS}


def corefile(node_ip: str, kubeconfig: Path) -> str:
    """CoreDNS's configuration: every directive in it must be one of the plugins
    hack/controlplane.sh builds in (COREDNS_PLUGINS), or CoreDNS refuses to start."""
    return f"""cluster.local:53 {{
    bind {node_ip}
    kubernetes cluster.local {{
        kubeconfig {kubeconfig} node
    }}
    errors
}}
.:53 {{
    bind {node_ip}
    errors
}}
"""


def docker_archive(path: Path, ref: str, files: dict[str, tuple[bytes, int]], entry: str) -> None:
    """Write a one-layer image (docker-archive, as `ctr images import` reads it)."""
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w") as tar:
        for name, (data, mode) in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), mode
            tar.addfile(info, io.BytesIO(data))
    layer_bytes = layer.getvalue()
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": [entry], "WorkingDir": "/"},
        "rootfs": {
            "type": "layers",
            "diff_ids": ["sha256:" + hashlib.sha256(layer_bytes).hexdigest()],
        },
    }
    config_bytes = json.dumps(config).encode()
    config_name = hashlib.sha256(config_bytes).hexdigest() + ".json"
    manifest = [{"Config": config_name, "RepoTags": [ref], "Layers": ["layer.tar"]}]
    with tarfile.open(path, "w") as out:
        for name, data in (
            (config_name, config_bytes),
            ("layer.tar", layer_bytes),
            ("manifest.json", json.dumps(manifest).encode()),
        ):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            out.addfile(info, io.BytesIO(data))


def _kill_members(cgroup: Path) -> None:
    """SIGKILL what is left in a cgroup tree the run created (say a `runc init` that
    containerd's death left blocked), so the tree can be removed."""
    pids = {int(pid) for procs in cgroup.rglob("cgroup.procs") for pid in procs.read_text().split()}
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if Path(f"/proc/{p}").exists()}
        time.sleep(0.05)


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True)


class KubeletCluster:
    """One node: control plane, containerd and kubelet in the network namespace of a run."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        digest = hashlib.sha256(str(self.root).encode()).hexdigest()
        self.suffix = digest[:6]
        self.netns = f"kn-{self.suffix}"
        self.host_link, self.node_link = f"knh{self.suffix}", f"knn{self.suffix}"
        self.addresses = Addresses(int(digest[6:8], 16) % 250 + 1)
        self.apiserver_port = 6443
        self._bins: dict[str, Path] = {}

    # -- paths ---------------------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def server(self) -> str:
        return f"https://{self.addresses.node_ip}:{self.apiserver_port}"

    def _spec(self, name: str, argv: list[str]) -> ProcessSpec:
        inside = ["nsenter", f"--net=/run/netns/{self.netns}", *argv]
        return ProcessSpec(
            name,
            tuple(inside),
            self.root / "logs" / f"{name}.log",
            self.root / "run" / f"{name}.pid",
        )

    def ctr(self, *args: str) -> list[str]:
        return ["ctr", "-a", str(self.containerd_socket), "-n", "k8s.io", *args]

    def kubectl(self, *args: str) -> list[str]:
        return ["kubectl", "--kubeconfig", str(self.kubeconfig), *args]

    # -- bring-up ------------------------------------------------------------------------
    def up(self, timeout: float = 120.0) -> None:
        """Start everything; returns once the node is Ready and schedulable."""
        for tool in ("containerd", "runc", "ctr", "nsenter", "openssl", "kubectl"):
            if shutil.which(tool) is None:
                raise ControlPlaneError(f"{tool} is missing: run hack/install-deps.sh")
        if not Path(CNI_BIN_DIR, "bridge").exists():
            raise ControlPlaneError(
                "CNI plugins missing: apt-get install containernetworking-plugins"
            )
        self._bins = node_binaries()
        self._record_host_state()
        self._network_up()
        self._write_configs()
        self._start("containerd", ["containerd", "--config", str(self.root / "containerd.toml")])
        self._wait(self.containerd_socket.exists, "containerd socket", 30)
        self._import_pause()
        self._start_control_plane()
        self._start("kubelet", self._kubelet_argv())
        self._wait(self._node_ready, "node Ready", timeout)

    def _record_host_state(self) -> None:
        record = self.root / "host-state.json"
        if record.exists():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        state = {
            "sysctls": {k: Path("/proc/sys", k).read_text().strip() for k in SYSCTLS},
            "absent_paths": [p for p in HOST_PATHS if not os.path.lexists(p)],
            "absent_cgroups": [
                str(d / c)
                for d in Path("/sys/fs/cgroup").iterdir()
                for c in CGROUPS
                if d.is_dir() and not (d / c).exists()
            ],
        }
        record.write_text(json.dumps(state, indent=2))

    def _network_up(self) -> None:
        a = self.addresses
        if not Path("/run/netns", self.netns).exists():
            _run("ip", "netns", "add", self.netns)
        ns = ("ip", "-n", self.netns)
        if not Path("/sys/class/net", self.host_link).exists():
            _run(
                "ip",
                "link",
                "add",
                self.host_link,
                "type",
                "veth",
                "peer",
                "name",
                self.node_link,
                "netns",
                self.netns,
            )
            _run("ip", "addr", "add", f"{a.host_ip}/30", "dev", self.host_link)
            _run("ip", "link", "set", self.host_link, "up")
            _run(*ns, "addr", "add", f"{a.node_ip}/30", "dev", self.node_link)
            _run(*ns, "link", "set", self.node_link, "up")
            _run(*ns, "link", "set", "lo", "up")
            # A default route the kubelet needs to pick its node IP; the host forwards
            # nothing from the namespace (no ip_forward change), so no pod packet leaves.
            _run(*ns, "route", "add", "default", "via", a.host_ip)
            _run("ip", "netns", "exec", self.netns, "sysctl", "-qw", "net.ipv4.ip_forward=1")

    def _write_configs(self) -> None:
        r, a = self.root, self.addresses
        for d in ("containerd", "cni/net.d", "kubelet", "pods-logs", "logs", "run", "pki", "pv"):
            (r / d).mkdir(parents=True, exist_ok=True)
        (r / "containerd.toml").write_text(
            f"""version = 2
root = "{r}/containerd/root"
state = "{r}/containerd/state"
[grpc]
  address = "{self.containerd_socket}"
[ttrpc]
  address = "{self.containerd_socket}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{r}/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  disable_apparmor = true
  netns_mounts_under_state_dir = true
  # The machine may lack CAP_SYS_RESOURCE: runc would fail raising oom_score_adj.
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        Root = "{r}/containerd/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{CNI_BIN_DIR}"
    conf_dir = "{r}/cni/net.d"
"""
        )
        conflist = {
            "cniVersion": "1.0.0",
            "name": "kubenova",
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": "knpods0",
                    "isGateway": True,
                    "ipMasq": False,
                    "hairpinMode": True,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{"subnet": a.pod_cidr}]],
                        "routes": [{"dst": "0.0.0.0/0"}],
                        "dataDir": f"{r}/cni/ipam",
                    },
                },
                {"type": "portmap", "capabilities": {"portMappings": True}},
            ],
        }
        (r / "cni/net.d/10-kubenova.conflist").write_text(json.dumps(conflist, indent=2))
        if not (r / "pki/sa.key").exists():
            _run("openssl", "genrsa", "-out", str(r / "pki/sa.key"), "2048")
            _run(
                "openssl",
                "rsa",
                "-in",
                str(r / "pki/sa.key"),
                "-pubout",
                "-out",
                str(r / "pki/sa.pub"),
            )
            token = hashlib.sha256(os.urandom(32)).hexdigest()
            (r / "pki/tokens.csv").write_text(f"{token},{ADMIN_TOKEN_USER},1,system:masters\n")
            os.chmod(r / "pki/tokens.csv", 0o600)
        token = (r / "pki/tokens.csv").read_text().split(",")[0]
        self.kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "node",
                            "cluster": {
                                "server": self.server,
                                "certificate-authority": str(r / "pki/serving/apiserver.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": token}}],
                    "contexts": [{"name": "node", "context": {"cluster": "node", "user": "admin"}}],
                    "current-context": "node",
                }
            )
        )
        os.chmod(self.kubeconfig, 0o600)
        (r / "kubelet.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubelet.config.k8s.io/v1beta1",
                    "kind": "KubeletConfiguration",
                    "address": a.node_ip,
                    "readOnlyPort": 0,
                    "healthzBindAddress": "127.0.0.1",
                    "cgroupDriver": "cgroupfs",
                    "failSwapOn": False,
                    "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
                    "podLogsDir": f"{r}/pods-logs",
                    "authentication": {
                        "anonymous": {"enabled": True},
                        "webhook": {"enabled": False},
                    },
                    "authorization": {"mode": "AlwaysAllow"},
                    "makeIPTablesUtilChains": False,
                    "evictionHard": {
                        "memory.available": "200Mi",
                        "nodefs.available": "2%",
                        "imagefs.available": "2%",
                    },
                    "imageGCHighThresholdPercent": 99,
                    "imageGCLowThresholdPercent": 98,
                    "clusterDomain": "cluster.local",
                    "clusterDNS": [a.dns_ip],
                    # Pods resolve through CoreDNS only, which answers cluster.local and
                    # nothing else: no lookup leaves the machine.
                    "resolvConf": str(r / "resolv.conf"),
                }
            )
        )
        (r / "resolv.conf").write_text(f"nameserver {a.dns_ip}\n")
        (r / "Corefile").write_text(corefile(a.node_ip, self.kubeconfig))

    def _start(self, name: str, argv: list[str]) -> None:
        spec = self._spec(name, argv)
        if live_pid(spec) is None:
            launch(spec, detached=True)

    def _wait(self, ok: Callable[[], bool], what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if ok():
                    return
            time.sleep(0.3)
        logs = "\n".join(
            f"--- {p.name}\n{log_tail(p, 8)}" for p in sorted((self.root / "logs").glob("*.log"))
        )
        raise ControlPlaneError(f"{what} not reached within {timeout:.0f} s\n{logs}")

    def _import_pause(self) -> None:
        archive = self.root / "pause.tar"
        if not archive.exists():
            data = self._bins["pause"].read_bytes()
            docker_archive(archive, PAUSE_IMAGE, {"pause": (data, 0o755)}, "/pause")
        self.import_image(archive)

    def import_image(self, archive: Path) -> None:
        subprocess.run(self.ctr("images", "import", str(archive)), check=True, capture_output=True)

    def _start_control_plane(self) -> None:
        r, a, b = self.root, self.addresses, self._bins
        self._start(
            "etcd",
            [
                str(b["etcd"]),
                f"--data-dir={r}/etcd",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--listen-client-urls=http://127.0.0.1:2379",
                "--advertise-client-urls=http://127.0.0.1:2379",
                "--listen-peer-urls=http://127.0.0.1:2380",
            ],
        )
        self._start(
            "kube-apiserver",
            [
                str(b["kube-apiserver"]),
                "--etcd-servers=http://127.0.0.1:2379",
                f"--bind-address={a.node_ip}",
                f"--advertise-address={a.node_ip}",
                f"--secure-port={self.apiserver_port}",
                f"--cert-dir={r}/pki/serving",
                f"--token-auth-file={r}/pki/tokens.csv",
                "--authorization-mode=Node,RBAC",
                "--service-account-issuer=https://kubernetes.default.svc",
                f"--service-account-key-file={r}/pki/sa.pub",
                f"--service-account-signing-key-file={r}/pki/sa.key",
                f"--service-cluster-ip-range={a.service_cidr}",
                "--allow-privileged=true",
                # `kubectl logs/exec` reach the kubelet by IP: the node name is in no DNS.
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
            ],
        )
        self._wait(self._apiserver_ready, "kube-apiserver /readyz", 90)
        self._start(
            "kube-controller-manager",
            [
                str(b["kube-controller-manager"]),
                f"--kubeconfig={self.kubeconfig}",
                "--leader-elect=false",
                "--secure-port=0",
                f"--service-account-private-key-file={r}/pki/sa.key",
                f"--root-ca-file={r}/pki/serving/apiserver.crt",
                "--controllers=*",
                f"--cluster-cidr={a.pod_cidr}",
            ],
        )
        (r / "scheduler.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubescheduler.config.k8s.io/v1",
                    "kind": "KubeSchedulerConfiguration",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "leaderElection": {"leaderElect": False},
                }
            )
        )
        self._start(
            "kube-scheduler",
            [str(b["kube-scheduler"]), f"--config={r}/scheduler.yaml", "--secure-port=0"],
        )
        (r / "proxy.yaml").write_text(
            json.dumps(
                {
                    "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
                    "kind": "KubeProxyConfiguration",
                    "mode": "nftables",
                    "clientConnection": {"kubeconfig": str(self.kubeconfig)},
                    "hostnameOverride": NODE_NAME,
                    "clusterCIDR": a.pod_cidr,
                    "nodePortAddresses": [f"{a.node_ip}/32"],
                    "conntrack": {
                        "maxPerCore": 0,
                        "min": 0,
                        "tcpEstablishedTimeout": "0s",
                        "tcpCloseWaitTimeout": "0s",
                    },
                }
            )
        )
        self._start("kube-proxy", [str(b["kube-proxy"]), f"--config={r}/proxy.yaml"])
        self._start("coredns", [str(b["coredns"]), "-conf", str(r / "Corefile")])

    def _kubelet_argv(self) -> list[str]:
        r = self.root
        return [
            str(self._bins["kubelet"]),
            f"--config={r}/kubelet.yaml",
            f"--kubeconfig={self.kubeconfig}",
            f"--root-dir={r}/kubelet",
            f"--cert-dir={r}/kubelet/pki",
            f"--hostname-override={NODE_NAME}",
            f"--node-ip={self.addresses.node_ip}",
        ]

    def _apiserver_ready(self) -> bool:
        ca = self.root / "pki/serving/apiserver.crt"
        return (
            ca.exists()
            and subprocess.run(
                self.kubectl("get", "--raw", "/readyz"), capture_output=True, check=False
            ).returncode
            == 0
        )

    def _node_ready(self) -> bool:
        out = subprocess.run(
            self.kubectl("get", "node", NODE_NAME, "-o", "json"), capture_output=True, check=True
        ).stdout
        node = json.loads(out)
        ready = any(
            c["type"] == "Ready" and c["status"] == "True" for c in node["status"]["conditions"]
        )
        return ready and not node["spec"].get("taints")

    # -- teardown ------------------------------------------------------------------------
    def down(self) -> None:
        """Stop everything and put the host back as `up()` found it."""
        if self._pid("kubelet") and self._apiserver_ok():
            # Let the kubelet stop the pods itself (CNI DEL, volume unmounts).
            subprocess.run(
                self.kubectl("delete", "pods", "-A", "--all", "--grace-period=1", "--timeout=60s"),
                capture_output=True,
                check=False,
            )
        for name in (
            "kube-controller-manager",
            "kube-scheduler",
            "coredns",
            "kube-proxy",
            "kubelet",
        ):
            self._stop(name)
        if self.containerd_socket.exists() and self._pid("containerd"):
            for task in self._lines(self.ctr("tasks", "ls", "-q")):
                subprocess.run(
                    self.ctr("tasks", "kill", "-s", "SIGKILL", task),
                    capture_output=True,
                    check=False,
                )
            time.sleep(1)
            for task in self._lines(self.ctr("tasks", "ls", "-q")):
                subprocess.run(
                    self.ctr("tasks", "delete", "-f", task), capture_output=True, check=False
                )
        for name in ("containerd", "kube-apiserver", "etcd"):
            self._stop(name)
        self._kill_shims()
        self._unmount_all()
        self._restore_host()
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "link", "del", self.host_link)
        with contextlib.suppress(subprocess.CalledProcessError):
            _run("ip", "netns", "del", self.netns)

    def _apiserver_ok(self) -> bool:
        try:
            return self._apiserver_ready()
        except OSError:
            return False

    def _pid(self, name: str) -> int | None:
        return live_pid(self._spec(name, []))

    def _stop(self, name: str) -> None:
        if (pid := self._pid(name)) is not None:
            stop_pid(pid, timeout=15)

    def _lines(self, argv: list[str]) -> list[str]:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        return result.stdout.split() if result.returncode == 0 else []

    def _kill_shims(self) -> None:
        # containerd-shim-runc-v2 outlives containerd by design; ours name our socket.
        needle = str(self.containerd_socket).encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            with contextlib.suppress(OSError):
                cmdline = (entry / "cmdline").read_bytes()
                if b"containerd-shim" in cmdline and needle in cmdline:
                    with contextlib.suppress(RuntimeError):
                        stop_pid(int(entry.name), timeout=5)

    def _unmount_all(self) -> None:
        prefix = str(self.root) + "/"
        for _ in range(3):
            mounts = [
                line.split()[1]
                for line in Path("/proc/self/mounts").read_text().splitlines()
                if line.split()[1].startswith(prefix)
            ]
            if not mounts:
                return
            for mount in sorted(set(mounts), reverse=True):
                if subprocess.run(["umount", mount], capture_output=True, check=False).returncode:
                    subprocess.run(["umount", "-l", mount], capture_output=True, check=False)

    def _restore_host(self) -> None:
        record = self.root / "host-state.json"
        if not record.exists():
            return
        state = json.loads(record.read_text())
        for key, value in state["sysctls"].items():
            Path("/proc/sys", key).write_text(value)
        for cgroup in state["absent_cgroups"]:
            top = Path(cgroup)
            if top.exists():
                _kill_members(top)
                for d in sorted(
                    (p for p in top.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)
                ):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    top.rmdir()
        for path in state["absent_paths"]:
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        record.unlink()

    def leftovers(self) -> list[str]:
        """What of ours is still on the host (empty after a clean `down()`)."""
        left = [p for p in HOST_PATHS if os.path.lexists(p)]
        left += [
            str(d / c)
            for d in Path("/sys/fs/cgroup").iterdir()
            for c in CGROUPS
            if (d / c).exists()
        ]
        if Path("/run/netns", self.netns).exists():
            left.append(f"netns {self.netns}")
        if Path("/sys/class/net", self.host_link).exists():
            left.append(f"link {self.host_link}")
        left += [
            line.split()[1]
            for line in Path("/proc/self/mounts").read_text().splitlines()
            if line.split()[1].startswith(str(self.root) + "/")
        ]
        return left


def main(argv: list[str] | None = None) -> int:
    """`python -m kubenova.devcluster.node up|down|status STATE_DIR` (as root)."""
    import argparse  # noqa: PLC0415 - only the command line needs it

    parser = argparse.ArgumentParser(
        prog="python -m kubenova.devcluster.node", description=main.__doc__
    )
    parser.add_argument("action", choices=("up", "down", "status"))
    parser.add_argument("state_dir", type=Path)
    args = parser.parse_args(argv)
    cluster = KubeletCluster(args.state_dir)
    if args.action == "up":
        started = time.monotonic()
        cluster.up()
        print(f"node {NODE_NAME} Ready in {time.monotonic() - started:.1f} s")
        print(f"export KUBECONFIG={cluster.kubeconfig}")
        print(f"images: {' '.join(cluster.ctr('images', 'import', 'IMAGE.tar'))}")
    elif args.action == "down":
        cluster.down()
        left = cluster.leftovers()
        print("left behind: " + ", ".join(left) if left else "nothing left behind")
        return 1 if left else 0
    else:
        up = Path("/run/netns", cluster.netns).exists()
        print(f"netns {cluster.netns}: {'up' if up else 'down'}; apiserver {cluster.server}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
