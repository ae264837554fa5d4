"""The peer: kube-scheduler draining the same backlog of Pods onto the same number of Nodes.

    python -m bench.kube_scheduler --nodes 1000 --pods 2000 --json
    python -m bench.kube_scheduler --nodes 1000 --pods 500 --anti-affinity --json

`bench.placements --peer` runs this after its own drain, so the ratio is measured in one
run rather than quoted. kube-scheduler is built by hack/controlplane.sh from the same Go
modules and version as the kube-apiserver it talks to (the version is read from that
binary) and cached beside it. A fresh etcd + kube-apiserver of that build gets the Nodes
(Ready, room for 64 CPUs, 256 GiB and 110 Pods each) and then the pending Pods (1 CPU and
512 MiB each, like Flavor bench.small; with `--anti-affinity` a required pod anti-affinity
on `kubernetes.io/hostname`, like a ServerGroup with policy anti-affinity). Then
kube-scheduler starts and the clock runs until every Pod has `spec.nodeName`: no kubelet
is needed for a Pod to be bound.

kube-scheduler runs with leader election off and client QPS/burst raised from its defaults
(50/100) to 5,000, as Kubernetes' own scheduler_perf does: otherwise its client-side rate
limiter, not its scheduling, would set the pace. Its writes are read from the apiserver's
`apiserver_request_total` before and after (the apiserver's own Lease renewals left out).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench._ceiling import ceiling, install_trivial
from bench._cloud import control_plane_cpu, cpu_seconds
from kubenova.devcluster import ClusterAccess, ControlPlane, ensure_binaries
from kubenova.devcluster.binaries import cache_bin_dir
from kubenova.kube import KubeClient, load_config
from kubenova.kube.paths import ResourceKind

REPO = Path(__file__).resolve().parents[1]
NODES = ResourceKind("", "v1", "nodes", False, "Node")
PODS = ResourceKind("", "v1", "pods", True, "Pod")
SERVICE_ACCOUNTS = ResourceKind("", "v1", "serviceaccounts", True, "ServiceAccount")
CLIENT_QPS = 5000
WRITE_VERBS = ("POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION")
_REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{([^}]*)\} (\S+)$", re.MULTILINE)
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def apiserver_version(kube_apiserver: Path) -> str:
    """`v1.33.5` from `kube-apiserver --version` (the build stamps it)."""
    out = subprocess.run(
        [str(kube_apiserver), "--version"], capture_output=True, text=True, check=True
    ).stdout
    found = re.search(r"v\d+\.\d+\.\d+\S*", out)
    if found is None:
        raise SystemExit(f"cannot read a version from {kube_apiserver} --version: {out!r}")
    return found.group(0)


def ensure_kube_scheduler(version: str) -> Path:
    """The cached kube-scheduler of `version`, built (minutes, once) when missing."""
    binary = cache_bin_dir() / f"kube-scheduler-{version}"
    if not os.access(binary, os.X_OK):
        script = REPO / "hack" / "controlplane.sh"
        subprocess.run(
            [str(script), "kube-scheduler"], check=True, env={**os.environ, "KUBE_VERSION": version}
        )
    return binary


def node(name: str) -> dict[str, Any]:
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    room = {"cpu": "64", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
        },
        "status": {
            "capacity": room,
            "allocatable": room,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
        },
    }


def pod(name: str, anti_affinity: bool) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "containers": [
            {
                "name": "c",
                "image": "registry.k8s.io/pause:3.10",
                "resources": {"requests": {"cpu": "1", "memory": "512Mi"}},
            }
        ],
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
    }
    if anti_affinity:
        spec["affinity"] = {
            "podAntiAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": [
                    {
                        "labelSelector": {"matchLabels": {"group": "spread"}},
                        "topologyKey": "kubernetes.io/hostname",
                    }
                ]
            }
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"group": "spread"}},
        "spec": spec,
    }


async def _bounded(coros: list[Any], limit: int = 64) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(run(c) for c in coros))


async def register_nodes(client: KubeClient, count: int) -> None:
    async def one(i: int) -> None:
        body = node(f"n{i:05d}")
        name = body["metadata"]["name"]
        await client.create(NODES, body)
        # Whether create keeps a Node's status differs between versions; a status patch
        # is what a kubelet sends anyway.
        await client.patch(NODES, name, {"status": body["status"]}, subresource="status")
        # Admission (TaintNodesByCondition) taints every new Node not-ready; with no
        # kube-controller-manager here nothing would lift it once the Node is Ready.
        await client.patch(NODES, name, {"spec": {"taints": None}})

    await _bounded([one(i) for i in range(count)])


async def create_pods(client: KubeClient, count: int, anti_affinity: bool) -> None:
    await _bounded(
        [client.create(PODS, pod(f"p{i:05d}", anti_affinity), "bench") for i in range(count)]
    )


def write_counts(access: ClusterAccess) -> Counter[str]:
    """Writes the apiserver has served so far, by `VERB resource[/subresource]`."""
    text = access.kubectl("get", "--raw", "/metrics").stdout
    counts: Counter[str] = Counter()
    for labels_text, value in _REQUEST_TOTAL.findall(text):
        labels = dict(_LABEL.findall(labels_text))
        # The apiserver renews its own identity Lease every 10 s; that is not the peer's.
        if labels.get("verb") not in WRITE_VERBS or labels.get("resource") == "leases":
            continue
        resource = labels.get("resource", "")
        if labels.get("subresource"):
            resource += "/" + labels["subresource"]
        counts[f"{labels['verb']} {resource}"] += int(float(value))
    return counts


def _scheduler_config(root: Path, kubeconfig: Path) -> Path:
    config = {
        "apiVersion": "kubescheduler.config.k8s.io/v1",
        "kind": "KubeSchedulerConfiguration",
        "clientConnection": {
            "kubeconfig": str(kubeconfig),
            "qps": CLIENT_QPS,
            "burst": CLIENT_QPS,
        },
        "leaderElection": {"leaderElect": False},
    }
    path = root / "kube-scheduler.yaml"
    path.write_text(json.dumps(config))  # JSON is YAML
    return path


async def _drain(
    access: ClusterAccess, client: KubeClient, scheduler: Path, root: Path, count: int
) -> tuple[float, float, float, dict[str, float]]:
    """Seconds from kube-scheduler's start to the last binding, from the first to it, and
    from its start to the first; and the CPU seconds kube-scheduler and the control plane
    spent meanwhile."""
    bound: set[str] = set()
    done = asyncio.Event()
    first: list[float] = []

    async def watch() -> None:
        async for event in client.watch(PODS, "bench"):
            if (event.object.get("spec") or {}).get("nodeName"):
                bound.add(event.object["metadata"]["name"])
                if not first:
                    first.append(time.perf_counter())
                if len(bound) >= count:
                    done.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    config = _scheduler_config(root, access.kubeconfig)
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    plane_cpu = control_plane_cpu(root / "plane")
    with (root / "kube-scheduler.log").open("ab") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            [str(scheduler), f"--config={config}", "--secure-port=0", "--v=2"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        await asyncio.wait_for(done.wait(), timeout=60 + count * 0.3)
        finished = time.perf_counter()
        cpu = {
            "kube_scheduler": cpu_seconds(process.pid),
            "apiserver_and_etcd": control_plane_cpu(root / "plane") - plane_cpu,
        }
    except TimeoutError:
        tail = (root / "kube-scheduler.log").read_text(errors="replace")[-3000:]
        raise SystemExit(
            f"kube-scheduler bound {len(bound)} of {count} Pods; log:\n{tail}"
        ) from None
    finally:
        watcher.cancel()
        # Off the clock: its Events go out asynchronously, and they are writes it makes.
        await asyncio.sleep(2)
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return finished - started, finished - first[0], first[0] - started, cpu


async def _measure(
    access: ClusterAccess, scheduler: Path, root: Path, *, nodes: int, pods: int, anti: bool
) -> dict[str, Any]:
    client = KubeClient(load_config(access.kubeconfig), user_agent="bench")
    try:
        await client.create(
            SERVICE_ACCOUNTS,
            {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}},
            "bench",
        )
        await register_nodes(client, nodes)
        await create_pods(client, pods, anti)
        before = write_counts(access)
        elapsed, steady, to_first, cpu = await _drain(access, client, scheduler, root, pods)
        writes = write_counts(access) - before
        rates = await ceiling(client, min(pods, 1000))
        return {
            "nodes": nodes,
            "pods": pods,
            "anti_affinity": anti,
            "seconds_to_drain_incl_scheduler_start": round(elapsed, 2),
            "placements_per_s": round(pods / elapsed, 1),
            "placements_per_s_after_first": round((pods - 1) / steady, 1) if pods > 1 else None,
            "start_to_first_placement_s": round(to_first, 2),
            "writes": dict(sorted(writes.items())),
            "writes_per_placement": round(sum(writes.values()) / pods, 2),
            "apiserver_ceiling": rates,
            "cpu_ms_per_placement": {k: round(1000 * v / pods, 2) for k, v in cpu.items()},
            "client_qps": CLIENT_QPS,
            "load_average_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        await client.close()


def run(nodes: int, pods: int, anti_affinity: bool) -> dict[str, Any]:
    """A fresh control plane, Nodes and pending Pods, then kube-scheduler drains them."""
    binaries = ensure_binaries()
    version = apiserver_version(binaries.kube_apiserver)
    scheduler = ensure_kube_scheduler(version)
    root = Path(tempfile.mkdtemp(prefix="kubenova-peer-"))
    plane = ControlPlane(root / "plane", binaries=binaries)
    try:
        access = plane.up()
        access.kubectl("create", "namespace", "bench")
        install_trivial(access)
        result = asyncio.run(
            _measure(access, scheduler, root, nodes=nodes, pods=pods, anti=anti_affinity)
        )
        return {"kube_scheduler": version, **result}
    finally:
        plane.down()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=2000)
    parser.add_argument("--anti-affinity", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args.nodes, args.pods, args.anti_affinity)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
