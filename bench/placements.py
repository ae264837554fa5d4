"""Placements per second: a pending backlog drained onto many Hosts through the real apiserver.

    python -m bench.placements --hosts 1000 --instances 2000 --peer --json
    python -m bench.placements --hosts 1000 --instances 500 --anti-affinity --peer --json

Hosts are registered (Host + Lease) and Instances created while the operator is stopped;
then the operator starts and the clock runs until every Instance reports Scheduled=True.
Each placement is a durable claim in the SQLite inventory plus the operator's write to the
Instance (one status apply; the backlog carries the finalizers the operator's mutating
webhook adds at creation, since it is made while the operator is stopped). The operator
logs its writes on the way out: divided by the Instances, they are the writes per
placement. Then, on the same apiserver, the raw create and status-patch rates of a trivial
custom resource are its ceiling. The CPU the operator and the apiserver + etcd spent during
the drain, per placement, is printed too: on a shared machine it moves far less than the
rate.

`--peer` then runs kube-scheduler (bench.kube_scheduler: same Go modules and version as the
apiserver, a fresh apiserver of that build) on the same shape, Pods onto Nodes, and prints
its rate, writes, CPU and ceiling under "peer", and kubenova's rate over its as
"ratio_to_peer" (both clocks from the process's start), and as "ratio_to_peer_after_first"
(both from their first placement: start-up left out). Its CPU per placement over the
peer's, the apiserver's (+ etcd's) alone and everyone's, comes as
"control_plane_cpu_per_placement_vs_peer" and "all_cpu_per_placement_vs_peer".
`--repeat N` (with `--peer`) runs N such pairs one after the other and prints each with
the median (and range) of the rates, ratios, start-ups and CPU figures: this machine's
speed drifts within minutes, and one pair's ratio moves with it.
`--profile FILE` samples the operator with py-spy (collapsed stacks; py-spy beside the
Python running the bench or on PATH) from its start until the backlog is drained.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import kube_scheduler
from bench._ceiling import ceiling, install_trivial
from bench._cloud import Cloud, control_plane_cpu, cpu_seconds, local_cloud
from bench._profile import summarize
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


def py_spy() -> str:
    beside = Path(sys.executable).parent / "py-spy"
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: pip install py-spy")
    return found


def start_profiler(cloud: Cloud, output: Path) -> subprocess.Popen[bytes]:
    pid = cloud.processes["operator"].pid
    return subprocess.Popen(
        [
            *(py_spy(), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"),
            *("--output", str(output), "--nonblocking", "--threads"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    # SIGINT makes py-spy write what it sampled and exit.
    profiler.send_signal(signal.SIGINT)
    try:
        profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()


def operator_threads_cpu(cloud: Cloud) -> dict[str, float]:
    """The operator's CPU seconds so far: its main thread (the event loop) and the others."""
    pid = cloud.processes["operator"].pid
    seconds = {"event_loop": 0.0, "threads": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        # /proc/TID/stat would be the whole process's; the task's own is under task/.
        stat = Path(f"/proc/{pid}/task/{tid}/stat")
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue  # a thread that ended meanwhile
        used = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        seconds["event_loop" if int(tid) == pid else "threads"] += used
    return seconds


async def drain(
    cloud: Cloud, client: KubeClient, count: int, profile: Path | None = None
) -> tuple[float, float, float, dict[str, float]]:
    """Seconds from operator start to the last placement, from the first to the last, and
    from operator start to the first; and the CPU seconds the operator and the control
    plane spent meanwhile."""
    scheduled: set[str] = set()
    done = asyncio.Event()
    first: list[float] = []
    at_first: dict[str, float] = {}

    async def watch() -> None:
        async for event in client.watch(INSTANCES, "bench"):
            conditions = (event.object.get("status") or {}).get("conditions", [])
            if any(c["type"] == "Scheduled" and c["status"] == "True" for c in conditions):
                scheduled.add(event.object["metadata"]["name"])
                if not first:
                    first.append(time.perf_counter())
                    at_first.update(operator_threads_cpu(cloud))
                if len(scheduled) >= count:
                    done.set()

    watcher = asyncio.create_task(watch())
    await asyncio.sleep(0.5)
    plane_cpu = control_plane_cpu(cloud.root / "plane")
    started = time.perf_counter()
    cloud.start_operator("--lease-timeout=3600", *OPERATOR_ARGS)
    profiler = start_profiler(cloud, profile) if profile else None
    try:
        await asyncio.wait_for(done.wait(), timeout=600)
    finally:
        if profiler is not None:
            stop_profiler(profiler)
    finished = time.perf_counter()
    threads = operator_threads_cpu(cloud)
    cpu = {
        "operator": cpu_seconds(cloud.processes["operator"].pid),
        "apiserver_and_etcd": control_plane_cpu(cloud.root / "plane") - plane_cpu,
        # From the first placement on: start-up left out, split by thread.
        **{f"operator_after_first_{k}": v - at_first.get(k, 0.0) for k, v in threads.items()},
    }
    watcher.cancel()
    return finished - started, finished - first[0], first[0] - started, cpu


async def run(
    cloud: Cloud, hosts: int, instances: int, anti_affinity: bool, profile: Path | None = None
) -> dict[str, Any]:
    client = KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench")
    try:
        started = time.perf_counter()
        await register_hosts(client, hosts)
        registered = time.perf_counter() - started
        group = "spread" if anti_affinity else None
        await create_backlog(client, instances, group)
        elapsed, steady, to_first, cpu = await drain(cloud, client, instances, profile)
        requests = cloud.operator_writes()
        # The operator logs when its Host and Lease lists were in and judged (it places
        # nothing before), counted from its process's start like `to_first`.
        listed = re.findall(r"placing from ([\d.]+) s after process start", cloud.operator_log)
        # The operator is stopped: the apiserver serves the yardstick alone.
        rates = await ceiling(client, min(instances, 1000))
        return {
            "hosts": hosts,
            "instances": instances,
            "anti_affinity": anti_affinity,
            "seconds_to_drain_incl_operator_start": round(elapsed, 2),
            "placements_per_s": round(instances / elapsed, 1),
            "placements_per_s_after_first": round((instances - 1) / steady, 1),
            "operator_start_to_hosts_listed_s": float(listed[-1]) if listed else None,
            "operator_start_to_first_placement_s": round(to_first, 2),
            "load_average_1m": round(os.getloadavg()[0], 2),
            "host_registration_s": round(registered, 1),
            "reference": "kube-scheduler v1.33.5 here: 361/s plain, 242/s anti-affinity "
            "(recorded when the target was set; --peer measures it in the same run)",
            "target": "≥ 540/s plain, ≥ 300/s anti-affinity",
            "operator_requests": requests,
            "operator_writes_per_placement": round(sum(requests.values()) / instances, 2),
            "operator_connections_opened": cloud.operator_connections(),
            "apiserver_ceiling": rates,
            # Robust to a loaded machine where the rate is not: what each placement costs.
            "cpu_ms_per_placement": {k: round(1000 * v / instances, 2) for k, v in cpu.items()},
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


def one_pair(args: argparse.Namespace) -> dict[str, Any]:
    """One kubenova drain and, with --peer, kube-scheduler's on the same shape right after."""
    with local_cloud() as cloud:
        prepare_catalog(cloud, anti_affinity=args.anti_affinity)
        install_trivial(cloud.access)
        result = asyncio.run(
            run(cloud, args.hosts, args.instances, args.anti_affinity, args.profile)
        )
    if not args.peer:
        return result
    # After kubenova's cloud is torn down: the two never share the machine's cores.
    peer = kube_scheduler.run(args.hosts, args.instances, args.anti_affinity)
    result["peer"] = peer
    result["ratio_to_peer"] = round(result["placements_per_s"] / peer["placements_per_s"], 2)
    # From each one's first placement: the Python operator's start-up (imports, kopf,
    # its first lists) left out on both sides; `ratio_to_peer` keeps it in.
    if peer["placements_per_s_after_first"]:  # None for a single Pod
        result["ratio_to_peer_after_first"] = round(
            result["placements_per_s_after_first"] / peer["placements_per_s_after_first"], 2
        )
    # Per placement, the operator's CPU over kube-scheduler's: less at the mercy of load.
    ours, theirs = result["cpu_ms_per_placement"], peer["cpu_ms_per_placement"]
    result["cpu_per_placement_vs_peer"] = round(ours["operator"] / theirs["kube_scheduler"], 1)
    # The apiserver's (and etcd's) share, and everyone's: a drain on a machine this small is
    # CPU-bound on both sides, so `ratio_to_peer` stays near 1 / the second (0.92-0.98 of it
    # in every pair of 2026-12-06); the first says how much of that the operator cannot
    # spend less of (an Instance status write against a Pod binding and an Event).
    result["control_plane_cpu_per_placement_vs_peer"] = round(
        ours["apiserver_and_etcd"] / theirs["apiserver_and_etcd"], 2
    )
    result["all_cpu_per_placement_vs_peer"] = round(
        (ours["operator"] + ours["apiserver_and_etcd"])
        / (theirs["kube_scheduler"] + theirs["apiserver_and_etcd"]),
        2,
    )
    return result


# The figures --repeat gives the median of, each pair's own ratio first: this machine's
# speed drifts by a fifth within minutes (the apiserver's own ceiling with it), so a ratio
# is only as good as the two runs it divides, and the pairs alternate.
MEDIANS = (
    ("ratio_to_peer",),
    ("ratio_to_peer_after_first",),
    ("placements_per_s",),
    ("placements_per_s_after_first",),
    ("operator_start_to_first_placement_s",),
    ("peer", "placements_per_s"),
    ("peer", "placements_per_s_after_first"),
    ("peer", "start_to_first_placement_s"),
    ("cpu_ms_per_placement", "operator"),
    ("cpu_ms_per_placement", "apiserver_and_etcd"),
    ("peer", "cpu_ms_per_placement", "kube_scheduler"),
    ("peer", "cpu_ms_per_placement", "apiserver_and_etcd"),
    ("control_plane_cpu_per_placement_vs_peer",),
    ("all_cpu_per_placement_vs_peer",),
)


def with_medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every pair's figures, and the median of each in MEDIANS (with its range)."""
    medians: dict[str, Any] = {}
    for path in MEDIANS:
        values = []
        for one in runs:
            value: Any = one
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if value is not None:
                values.append(value)
        if values:
            medians[".".join(path)] = {
                "median": round(statistics.median(values), 2),
                "min": min(values),
                "max": max(values),
            }
    return {"repeat": len(runs), "medians": medians, "runs": runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=1000)
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--anti-affinity", action="store_true")
    parser.add_argument("--workers", type=int, default=None, help="operator --workers")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--peer", action="store_true", help="also drain the same backlog with kube-scheduler"
    )
    parser.add_argument("--profile", type=Path, help="py-spy the operator into this file")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="with --peer: this many kubenova/kube-scheduler pairs, alternating; prints each "
        "and the medians",
    )
    args = parser.parse_args()
    global OPERATOR_ARGS  # noqa: PLW0603 - set once from the command line
    if args.workers:
        OPERATOR_ARGS = (f"--workers={args.workers}",)
    if args.repeat > 1 and not args.peer:
        parser.error("--repeat alternates with kube-scheduler: it needs --peer")
    if args.repeat > 1 and args.profile:
        parser.error("--profile samples one run: leave out --repeat")
    runs = [one_pair(args) for _ in range(args.repeat)]
    result = runs[0] if args.repeat == 1 else with_medians(runs)
    if args.profile:
        result["profile"] = summarize(args.profile)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
