"""The operator's memory with many Instances: RSS once 10,000 are placed and watched.

    python -m bench.operator_memory --instances 10000 --hosts 100 --json

The operator starts on an empty cluster (Hosts registered, no Instances): its resident set
then is the reference. Then the Instances are created, and once every one reports
Scheduled=True (each a durable claim, watched, cached and queued like in production) the
operator's RSS and its peak (VmHWM) are read from /proc. The target is an RSS ≤ 200 MB
with 10,000 Instances; kopf operators commonly sit near 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path
from typing import Any

from bench._cloud import Cloud, local_cloud
from bench.placements import INSTANCES, create_backlog, prepare_catalog, register_hosts
from kubenova.kube import KubeClient, load_config

TARGET_MB = 200


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a process, in MB."""
    fields: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MB (MiB)
    return fields


async def scheduled_count(client: KubeClient, count: int, timeout: float) -> float:
    """Wait until `count` Instances in `bench` are Scheduled; seconds taken."""
    started = time.perf_counter()
    scheduled: set[str] = set()
    done = asyncio.Event()

    async def watch() -> None:
        async for event in client.watch(INSTANCES, "bench"):
            conditions = (event.object.get("status") or {}).get("conditions", [])
            if any(c["type"] == "Scheduled" and c["status"] == "True" for c in conditions):
                scheduled.add(event.object["metadata"]["name"])
                if len(scheduled) >= count:
                    done.set()

    watcher = asyncio.create_task(watch())
    try:
        await asyncio.wait_for(done.wait(), timeout=timeout)
    finally:
        watcher.cancel()
    return time.perf_counter() - started


async def run(cloud: Cloud, hosts: int, instances: int, settle: float) -> dict[str, Any]:
    client = KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench")
    try:
        await register_hosts(client, hosts)
        cloud.start_operator_as_shipped("--lease-timeout=3600")
        pid = cloud.processes["operator"].pid
        await asyncio.sleep(settle)
        idle = memory_mb(pid)
        await create_backlog(client, instances, None)
        seconds = await scheduled_count(client, instances, timeout=1800)
        await asyncio.sleep(settle)  # the last events handled, queues idle
        loaded = memory_mb(pid)
        return {
            "hosts": hosts,
            "instances": instances,
            "operator_rss_idle_mb": round(idle["VmRSS"], 1),
            "operator_rss_mb": round(loaded["VmRSS"], 1),
            "operator_peak_rss_mb": round(loaded["VmHWM"], 1),
            "per_instance_kb": round(
                (loaded["VmRSS"] - idle["VmRSS"]) * 1024 / max(instances, 1), 2
            ),
            "seconds_to_schedule_all": round(seconds, 1),
            "reference": "kopf operators commonly ~300 MB",
            "target": f"≤ {TARGET_MB} MB RSS with 10,000 Instances",
            "met": loaded["VmRSS"] <= TARGET_MB,
        }
    finally:
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=100)
    parser.add_argument("--instances", type=int, default=10000)
    parser.add_argument("--settle", type=float, default=5.0, help="seconds before each reading")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with local_cloud() as cloud:
        prepare_catalog(cloud)
        result = asyncio.run(run(cloud, args.hosts, args.instances, args.settle))
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
