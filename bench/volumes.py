"""Volume create→Available and delete→gone latency, and API writes per Volume.

    python -m bench.volumes --count 200 --agents 2 --json

A real apiserver, the operator and N volume-host agents run as processes; the agents
keep their exports in the fake driver's table (`--fake-exports`: no tgtd) but make real
sparse files. Volumes are created `interval` apart; a watch records when each first
reports phase Available and how many times kubenova changed it on the way (MODIFIED
events); then all are deleted and the time until each is gone is recorded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench._cloud import Cloud, local_cloud
from bench.instances import _wait_hosts_ready, percentile
from kubenova.api.v1alpha1 import Volume
from kubenova.kube import KubeClient, kubenova_kind, load_config

VOLUMES = kubenova_kind(Volume)
NAMESPACE = "bench"


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(percentile(values, 95), 3),
        "p99": round(percentile(values, 99), 3),
        "max": round(max(values), 3),
    }


async def measure(cloud: Cloud, count: int, interval: float, hosts: list[str]) -> dict[str, Any]:
    client = KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench")
    try:
        await _wait_hosts_ready(client, hosts)
        created: dict[str, float] = {}
        available: dict[str, float] = {}
        deleted: dict[str, float] = {}
        gone: dict[str, float] = {}
        modified: dict[str, int] = {}
        all_available, all_gone = asyncio.Event(), asyncio.Event()

        async def watch() -> None:
            async for event in client.watch(VOLUMES, NAMESPACE):
                name = event.object["metadata"]["name"]
                if event.type == "DELETED":
                    gone[name] = time.perf_counter()
                    if len(gone) == count:
                        all_gone.set()
                    continue
                if name in available:
                    continue
                if event.type == "MODIFIED":
                    modified[name] = modified.get(name, 0) + 1
                if (event.object.get("status") or {}).get("phase") == "Available":
                    available[name] = time.perf_counter()
                    if len(available) == count:
                        all_available.set()

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        for i in range(count):
            name = f"vol-{i:05d}"
            created[name] = time.perf_counter()
            await client.create(
                VOLUMES,
                {
                    "apiVersion": "kubenova.io/v1alpha1",
                    "kind": "Volume",
                    "metadata": {"name": name, "namespace": NAMESPACE},
                    "spec": {"sizeGiB": 1},
                },
                NAMESPACE,
            )
            await asyncio.sleep(interval)
        await asyncio.wait_for(all_available.wait(), timeout=120 + count * 0.5)
        placed_in = time.perf_counter() - started
        started = time.perf_counter()
        for name in created:
            deleted[name] = time.perf_counter()
            await client.delete(VOLUMES, name, NAMESPACE)
        await asyncio.wait_for(all_gone.wait(), timeout=120 + count * 0.5)
        deleted_in = time.perf_counter() - started
        watcher.cancel()
        writes = [modified.get(n, 0) for n in created]
        return {
            "volumes": count,
            "interval_s": interval,
            "volume_hosts": len(hosts),
            "create_to_available_s": summary([available[n] - created[n] for n in created]),
            "delete_to_gone_s": summary([gone[n] - deleted[n] for n in created]),
            "all_available_after_s": round(placed_in, 2),
            "all_gone_after_s": round(deleted_in, 2),
            "api_writes_per_volume": {
                "mean": round(statistics.mean(writes), 2),
                "max": max(writes),
                "how": "MODIFIED watch events from create to Available",
            },
        }
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    with local_cloud() as cloud:
        cloud.access.kubectl("create", "namespace", NAMESPACE)
        cloud.start_operator_as_shipped()
        hosts = [f"store-{i}" for i in range(args.agents)]
        for host in hosts:
            cloud.start_agent(
                host,
                capacity="vcpus=1,memoryMiB=1024,diskGiB=100000",
                extra=("--services=volume", "--fake-exports"),
            )
        result = asyncio.run(measure(cloud, args.count, args.interval, hosts))
        result["operator_requests"] = cloud.operator_writes()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
