"""Placements per second: a pending backlog drained onto many Hosts through the real apiserver.

    python -m bench.placements --hosts 1000 --instances 2000 --json
    python -m bench.placements --hosts 1000 --instances 500 --anti-affinity --json

Hosts are registered (Host + Lease) and Instances created while the operator is stopped;
then the operator starts and the clock runs until every Instance reports Scheduled=True.
Each placement is a durable claim in the SQLite inventory plus the operator's write to the
Instance (one status apply; the backlog carries the finalizers the operator's mutating
webhook adds at creation, since it is made while the operator is stopped). The same shape
as kube-scheduler's reference figure in docs/performance-targets.md: 2,000 pending Pods
onto 1,000 Nodes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from typing import Any

from bench._cloud import Cloud, local_cloud
from kubenova.agents.host.lease import micro_time
from kubenova.api.v1alpha1 import Host, Instance
from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.kube.paths import LEASES, NAMESPACES
from kubenova.wellknown import HANDOVER_FINALIZERS, SYSTEM_NAMESPACE, lease_name

HOSTS = kubenova_kind(Host)
INSTANCES = kubenova_kind(Instance)
OPERATOR_ARGS: tuple[str, ...] = ()
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


async def bounded(coros: list[Any], limit: int = 64) -> None:
    gate = asyncio.Semaphore(limit)

    async def run(coro: Any) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(run(c) for c in coros))


async def register_hosts(client: KubeClient, count: int) -> None:
    await client.create(
        NAMESPACES,
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": SYSTEM_NAMESPACE}},
    )

    async def one(i: int) -> None:
        name = f"h{i:05d}"
        body = await client.create(
            HOSTS,
            {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "Host",
                "metadata": {"name": name},
                "spec": {"availabilityZone": "nova", "services": ["compute"]},
            },
        )
        await client.patch(
            HOSTS,
            name,
            {"status": {"capacity": {"vcpus": 64, "memoryMiB": 262144, "diskGiB": 2000}}},
            subresource="status",
        )
        del body
        now = micro_time()
        await client.create(
            LEASES,
            {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": lease_name(name), "namespace": SYSTEM_NAMESPACE},
                "spec": {
                    "holderIdentity": name,
                    "leaseDurationSeconds": 3600,
                    "renewTime": now,
                    "acquireTime": now,
                },
            },
            SYSTEM_NAMESPACE,
        )

    await bounded([one(i) for i in range(count)])


async def create_backlog(client: KubeClient, count: int, group: str | None) -> None:
    placement = {"placement": {"group": group}} if group else {}

    async def one(i: int) -> None:
        await client.create(
            INSTANCES,
            {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "Instance",
                "metadata": {
                    "name": f"p{i:05d}",
                    "namespace": "bench",
                    "finalizers": list(HANDOVER_FINALIZERS),
                },
                "spec": {"flavor": "bench.small", "image": "bench-image", **placement},
            },
            "bench",
        )

    await bounded([one(i) for i in range(count)])


async def drain(cloud: Cloud, client: KubeClient, count: int) -> tuple[float, float]:
    """Seconds from operator start to the last placement, and from the first to the last."""
    scheduled: set[str] = set()
    done = asyncio.Event()
    first: list[float] = []

    async def watch() -> None:
        async for event in client.watch(INSTANCES, "bench"):
            conditions = (event.object.get("status") or {}).get("conditions", [])
            if any(c["type"] == "Scheduled" and c["status"] == "True" for c in conditions):
                scheduled.add(event.object["metadata"]["name"])
                if not first:
                    first.append(time.perf_counter())
                if len(scheduled) >= count:
                    done.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    started = time.perf_counter()
    cloud.start_operator("--lease-timeout=3600", *OPERATOR_ARGS)
    await asyncio.wait_for(done.wait(), timeout=600)
    finished = time.perf_counter()
    watcher.cancel()
    return finished - started, finished - first[0]


async def run(cloud: Cloud, hosts: int, instances: int, anti_affinity: bool) -> dict[str, Any]:
    client = KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench")
    try:
        started = time.perf_counter()
        await register_hosts(client, hosts)
        registered = time.perf_counter() - started
        group = "spread" if anti_affinity else None
        await create_backlog(client, instances, group)
        elapsed, steady = await drain(cloud, client, instances)
        return {
            "hosts": hosts,
            "instances": instances,
            "anti_affinity": anti_affinity,
            "seconds_to_drain_incl_operator_start": round(elapsed, 2),
            "placements_per_s": round(instances / elapsed, 1),
            "placements_per_s_after_first": round((instances - 1) / steady, 1),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "host_registration_s": round(registered, 1),
            "reference": "kube-scheduler v1.33.5 here: 361/s plain, 242/s anti-affinity",
            "target": "≥ 540/s plain, ≥ 300/s anti-affinity",
        }
    finally:
        await client.close()


def prepare_catalog(cloud: Cloud, *, anti_affinity: bool = False) -> None:
    """The namespace `bench`, flavor bench.small, image bench-image (and group `spread`)."""
    kubectl = cloud.access.kubectl
    kubectl("create", "namespace", "bench")
    docs: list[dict[str, Any]] = [
        {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Flavor",
            "metadata": {"name": "bench.small"},
            "spec": {"vcpus": 1, "memoryMiB": 512, "diskGiB": 1},
        },
        {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Image",
            "metadata": {"name": "bench-image"},
            "spec": {"source": {"bucket": "bench", "key": "x"}, "sha256": EMPTY_SHA256},
        },
    ]
    if anti_affinity:
        docs.append(
            {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "ServerGroup",
                "metadata": {"name": "spread", "namespace": "bench"},
                "spec": {"policy": "anti-affinity"},
            }
        )
    kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--anti-affinity", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="operator --workers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    global OPERATOR_ARGS  # noqa: PLW0603 - set once from the command line
    if args.workers:
        OPERATOR_ARGS = (f"--workers={args.workers}",)
    with local_cloud() as cloud:
        prepare_catalog(cloud, anti_affinity=args.anti_affinity)
        result = asyncio.run(run(cloud, args.hosts, args.instances, args.anti_affinity))
        result["operator_requests"] = cloud.operator_writes()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
