"""Create→Running latency and API writes per Instance, against the apiserver's own ceiling.

    python -m bench.instances --count 100 --interval 0.1 --agents 2 --json
    python -m bench.instances --count 500 --interval 0 --agents 2 --json   # throughput

A real apiserver, the operator and N agents run as processes; agents use the fake
hypervisor (libvirt's test driver, a private node file each). Instances are created
`interval` apart; a watch records when each one first reports phase Running, and how many
times kubenova changed it on the way (every effective write bumps resourceVersion and
shows up as one MODIFIED event). In the same run, the apiserver's raw rate for a trivial
custom resource — create, then status patch, from this same client — is the ceiling.

Throughput, operator and agents together: Instances from the first create to the last
Running, per second. With `--interval 0` the creates go out as a burst, 32 in flight (as
the ceiling's do). Its target (TARGETS.md) is half the ceiling's status patches per second
divided by the writes per Instance. The CPU the operator, the agents and the apiserver +
etcd spent from the first create to the last Running is printed per Instance.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from bench._ceiling import ceiling, install_trivial
from bench._cloud import Cloud, control_plane_cpu, cpu_seconds, local_cloud
from kubenova.api.v1alpha1 import Instance
from kubenova.kube import KubeClient, kubenova_kind, load_config

INSTANCES = kubenova_kind(Instance)
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
BURST_IN_FLIGHT = 32  # as many creates in flight as the ceiling's
THROUGHPUT_SHARE = 0.5  # the target: half of what the apiserver alone could take


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(cloud: Cloud, count: int, interval: float, hosts: list[str]) -> dict[str, Any]:
    client = KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench")
    try:
        await _wait_hosts_ready(client, hosts)
        created: dict[str, float] = {}
        running: dict[str, float] = {}
        modified: dict[str, int] = {}
        done = asyncio.Event()

        async def watch() -> None:
            async for event in client.watch(INSTANCES, "bench"):
                name = event.object["metadata"]["name"]
                if name in running:
                    continue
                if event.type == "MODIFIED":
                    modified[name] = modified.get(name, 0) + 1
                if (event.object.get("status") or {}).get("phase") == "Running":
                    running[name] = time.perf_counter()
                    if len(running) == count:
                        done.set()

        gate = asyncio.Semaphore(BURST_IN_FLIGHT)

        async def create(name: str) -> None:
            async with gate:
                created[name] = time.perf_counter()
                await client.create(
                    INSTANCES,
                    {
                        "apiVersion": "kubenova.io/v1alpha1",
                        "kind": "Instance",
                        "metadata": {"name": name, "namespace": "bench"},
                        "spec": {"flavor": "bench.small", "image": "bench-image"},
                    },
                    "bench",
                )

        watcher = asyncio.create_task(watch())
        await asyncio.sleep(0.2)
        cpu_before = _cpu(cloud)
        names = [f"vm-{i:05d}" for i in range(count)]
        if interval > 0:
            for name in names:
                await create(name)
                await asyncio.sleep(interval)
        else:
            await asyncio.gather(*(create(name) for name in names))
        await asyncio.wait_for(done.wait(), timeout=120 + count * 0.5)
        cpu_used = {k: v - cpu_before[k] for k, v in _cpu(cloud).items()}
        watcher.cancel()
        latencies = [running[n] - created[n] for n in created]
        writes = [modified.get(n, 0) for n in created]
        span = max(running.values()) - min(created.values())
        rates = await ceiling(client, count)
        # TARGETS.md: half of the ceiling (the status-patch rate: a write is a patch)
        # divided by the writes per Instance.
        target = THROUGHPUT_SHARE * rates["status_patch_per_s"] / max(statistics.mean(writes), 1)
        return {
            "instances": count,
            "interval_s": interval,
            "agents": len(hosts),
            "create_to_running_s": {
                "p50": round(statistics.median(latencies), 3),
                "p95": round(percentile(latencies, 95), 3),
                "p99": round(percentile(latencies, 99), 3),
                "max": round(max(latencies), 3),
            },
            "api_writes_per_instance": {
                "mean": round(statistics.mean(writes), 2),
                "max": max(writes),
                "how": "MODIFIED watch events from create to Running (effective writes "
                "by the operator and the agent)",
            },
            "apiserver_ceiling": rates,
            "cpu_ms_per_instance": {k: round(1000 * v / count, 2) for k, v in cpu_used.items()},
            # Paced creates (--interval > 0) measure latency: their rate is the pace.
            "throughput": None
            if interval > 0
            else {
                "instances_per_s": round(count / span, 1),
                "target_per_s": round(target, 1),
                "how": "Instances from the first create to the last Running; target: half "
                "the ceiling's status patches/s divided by the writes per Instance",
            },
        }
    finally:
        await client.close()


def _cpu(cloud: Cloud) -> dict[str, float]:
    """CPU seconds so far of the operator, the agents together, and the apiserver + etcd."""
    agents = [p.pid for name, p in cloud.processes.items() if name.startswith("agent-")]
    return {
        "operator": cpu_seconds(cloud.processes["operator"].pid),
        "agents": sum(cpu_seconds(pid) for pid in agents),
        "apiserver_and_etcd": control_plane_cpu(cloud.root / "plane"),
    }


async def _wait_hosts_ready(client: KubeClient, hosts: list[str]) -> None:
    from kubenova.api.v1alpha1 import Host  # noqa: PLC0415

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = await client.list(kubenova_kind(Host))
        ready = {
            item["metadata"]["name"]
            for item in listing.get("items", [])
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in (item.get("status") or {}).get("conditions", [])
            )
        }
        if set(hosts) <= ready:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"hosts never became Ready: {hosts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.1)
    parser.add_argument("--agents", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    with local_cloud() as cloud:
        kubectl = cloud.access.kubectl
        kubectl("create", "namespace", "bench")
        install_trivial(cloud.access)
        kubectl(
            "apply",
            "-f",
            "-",
            input=json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "List",
                    "items": [
                        {
                            "apiVersion": "kubenova.io/v1alpha1",
                            "kind": "Flavor",
                            "metadata": {"name": "bench.small"},
                            "spec": {"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
                        },
                        {
                            "apiVersion": "kubenova.io/v1alpha1",
                            "kind": "Image",
                            "metadata": {"name": "bench-image"},
                            "spec": {
                                "source": {"bucket": "bench", "key": "x"},
                                "format": "qcow2",
                                "sha256": EMPTY_SHA256,
                            },
                        },
                    ],
                }
            ),
        )
        cloud.start_operator_as_shipped()
        hosts = [f"bench-{i}" for i in range(args.agents)]
        for host in hosts:
            cloud.start_agent(host, capacity="vcpus=4096,memoryMiB=4194304,diskGiB=100000")
        result = asyncio.run(measure(cloud, args.count, args.interval, hosts))
        operator = cloud.operator_writes()
        result["operator_requests"] = operator
        result["targets"] = {"p50_s": 1.0, "p99_s": 3.0, "writes_per_instance": 4}
        if result["throughput"] is not None:
            result["targets"]["throughput_per_s"] = result["throughput"]["target_per_s"]
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
