"""Live migration of one 128 MiB TCG guest, apply -> Completed through kubenova vs plain libvirt.

    python -m bench.migration --rounds 3 --json

The whole path: a real apiserver, operator and two agents (compute service only, no NIC:
the e2e test adds the tenant network), each agent on its own private libvirtd (distinct host
UUIDs and migration ports) standing for a host; the image is uploaded to a local object
store and fetched by the agents as on a real host. One guest prints a counter to its serial
console every 100 ms; a watcher reads both console logs every 10 ms, and the guest's pause
is the longest wait between two consecutive ticks around a move.

kubenova: an InstanceMigration (created through the API, `spec.targetHost` the other host)
moves the guest back and forth `--rounds` times. Every move's timeline is printed, in
seconds from the migration's creation: the phases as a watch of the InstanceMigration sees
them (Scheduling, PreparingTarget, the target's TargetPrepared, Running, the source's
Migrated report, Completed) and, from a 5 ms poll of both libvirtds, the job's start (the
domain defined on the target) and end (the domain gone from the source).

The first move goes to a host that never ran the image, so its target fetches the image
(`cold`); the later ones go to hosts whose image cache already has it (`warm`), which is
what plain libvirt's figure assumes too. Both are reported; the ratio is the warm one.

plain libvirt: after kubenova's rounds both agents stop and the same guest moves the same
number of times as RUNBOOK.md records it (qemu-img overlay on the target's base, seed
copied, paths rewritten in the migratable XML, migrateToURI3 with the same flags; QEMU's
own 300 ms downtime limit where the agent asks for 100 ms), timed from the first file
made to the call's return.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import libvirt

from bench._cloud import Cloud, local_cloud
from kubenova.agents.compute.migration import MIGRATION_FLAGS
from kubenova.agents.compute.spec import domain_name_for
from kubenova.api.v1alpha1 import Host, Instance, InstanceMigration
from kubenova.devcluster.libvirtd import PrivateLibvirtd
from kubenova.devcluster.objectstore import ObjectStore
from kubenova.devcluster.plain_migration import backing_of, prepare_target_files
from kubenova.kube import KubeClient, NotFound, kubenova_kind
from kubenova.kube.config import from_kubeconfig

REPO = Path(__file__).resolve().parents[1]
TICK = re.compile(rb"KUBENOVA-TICK (\d+)")
NAMESPACE = "bench-mig"
HOSTS = ("mig-a", "mig-b")
MIGRATIONS = kubenova_kind(InstanceMigration)
INSTANCES = kubenova_kind(Instance)
HOST_KIND = kubenova_kind(Host)
VERBOSE_ENV = "KUBENOVA_BENCH_VERBOSE"  # set by --log-dir: the agents log at INFO
TARGET_RATIO = 1.5  # issue 18: apply -> Completed at most 1.5x plain libvirt's time
# The timeline's marks, in the order they happen.
MARKS = (
    "Scheduling",
    "PreparingTarget",
    "TargetPrepared",
    "Running",
    "job_start",
    "job_end",
    "Migrated",
    "Completed",
)


def guest_image() -> Path:
    out = subprocess.run(
        [str(REPO / "hack" / "build-test-image.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def free_ports(width: int = 10) -> tuple[int, int]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        low = int(probe.getsockname()[1])
    return low, low + width - 1


class Ticks:
    """When each tick first appeared in any of the watched console logs."""

    def __init__(self, logs: list[Path]) -> None:
        self.logs = logs
        self.seen: dict[int, float] = {}
        self._offsets: dict[Path, tuple[int, int]] = {}  # log -> (inode, bytes read)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            for log in self.logs:
                try:
                    with log.open("rb") as stream:
                        # Each move makes a fresh file on the target: read it from the start
                        # (ext4 may give it the removed one's inode: shorter is new too).
                        info = os.fstat(stream.fileno())
                        inode = info.st_ino
                        known, offset = self._offsets.get(log, (inode, 0))
                        offset = offset if known == inode and info.st_size >= offset else 0
                        stream.seek(offset)
                        chunk = stream.read()
                except FileNotFoundError:
                    continue
                end = chunk.rfind(b"\n") + 1
                self._offsets[log] = (inode, offset + end)
                now = time.perf_counter()
                for match in TICK.finditer(chunk[:end]):
                    self.seen.setdefault(int(match.group(1)), now)

    def last(self) -> int:
        return max(self.seen, default=-1)

    def wait_past(self, tick: int, timeout: float = 120.0) -> None:
        deadline = time.perf_counter() + timeout
        while self.last() <= tick:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"the guest's counter did not pass {tick}")
            time.sleep(0.02)

    def pause_since(self, start: int) -> float:
        seen = dict(self.seen)
        return max(seen[n + 1] - seen[n] for n in seen if n >= start and n + 1 in seen)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


class JobWatch:
    """Polls both libvirtds every 5 ms: when the guest's domain first appears on the target
    (the job's Prepare step defines it there: the job started) and when it is gone from the
    source (UNDEFINE_SOURCE at the job's end)."""

    def __init__(self, uris: dict[str, str], uid: str) -> None:
        # Each miss is a libvirt error, which the default handler prints to stderr.
        libvirt.registerErrorHandler(lambda *_: None, None)
        self.connections = {host: libvirt.open(uri) for host, uri in uris.items()}
        self.name = domain_name_for(uid)

    def _defined(self, host: str) -> bool:
        try:
            self.connections[host].lookupByName(self.name)
        except libvirt.libvirtError:
            return False
        return True

    def watch(self, source: str, target: str, stop: threading.Event) -> dict[str, float]:
        marks: dict[str, float] = {}
        while True:
            last = stop.is_set()  # one more look after the caller's stop: the end is seen
            if "job_start" not in marks and self._defined(target):
                marks["job_start"] = time.perf_counter()
            if "job_start" in marks and not self._defined(source):
                marks["job_end"] = time.perf_counter()
                return marks
            if last:
                return marks
            stop.wait(0.005)

    def close(self) -> None:
        for connection in self.connections.values():
            connection.close()


async def kubenova_move(
    client: KubeClient, jobs: JobWatch, name: str, source: str, target: str
) -> dict[str, float]:
    """One InstanceMigration from creation to Completed: the timeline, in seconds."""
    marks: dict[str, float] = {}
    stop = threading.Event()
    job = asyncio.create_task(asyncio.to_thread(jobs.watch, source, target, stop))
    body = {
        "apiVersion": MIGRATIONS.api_version,
        "kind": MIGRATIONS.kind,
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"instanceName": "mover", "targetHost": target},
    }
    started = time.perf_counter()
    created = await client.create(MIGRATIONS, body, NAMESPACE)
    marks["created"] = time.perf_counter()
    try:
        async with asyncio.timeout(300):
            async for event in client.watch(
                MIGRATIONS, NAMESPACE, resource_version=created["metadata"]["resourceVersion"]
            ):
                if event.object["metadata"]["name"] != name:
                    continue
                now = time.perf_counter()
                status = event.object.get("status") or {}
                if phase := status.get("phase"):
                    marks.setdefault(phase, now)
                for condition in status.get("conditions") or []:
                    if condition.get("type") in ("TargetPrepared", "Migrated"):
                        marks.setdefault(condition["type"], now)
                if phase in ("Completed", "Failed"):
                    break
    finally:
        stop.set()
        marks |= await job
    if "Completed" not in marks:
        raise RuntimeError(f"migration {name} did not complete: {marks}")
    return {mark: round(at - started, 3) for mark, at in marks.items()}


def plain_migrate(
    source: Any, target_uri: str, source_dir: Path, target_dir: Path, base: tuple[Path, int]
) -> None:
    """RUNBOOK's recipe by hand: empty overlay on the same base, seed copied, paths
    rewritten in the migratable XML, then migrateToURI3."""
    shutil.rmtree(target_dir, ignore_errors=True)
    prepare_target_files(
        source_dir / "disk.qcow2",
        source_dir / "seed.iso",
        target_dir / "disk.qcow2",
        target_dir / "seed.iso",
        base,
    )
    xml = source.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE).replace(
        f"{source_dir}/", f"{target_dir}/"
    )
    xml = re.sub(r"<backingStore.*?</backingStore>", "", xml, flags=re.S)
    params = {
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml,
        libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: xml,
        libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS: ["vda"],
        libvirt.VIR_MIGRATE_PARAM_URI: "tcp://127.0.0.1",
        libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS: "127.0.0.1",
    }
    source.migrateToURI3(target_uri, params, MIGRATION_FLAGS)


def upload_image(cloud: Cloud, image: Path, s3_env: dict[str, str]) -> None:
    env = {**os.environ, **s3_env, "KUBECONFIG": str(cloud.access.kubeconfig)}
    subprocess.run(
        [sys.executable, "-m", "kubenova.cli", "image", "upload", str(image / "disk.qcow2"),
         "--name", "mig-guest", "--min-memory", "96", "--kernel", str(image / "vmlinuz"),
         "--initrd", str(image / "initrd.img"),
         "--cmdline", (image / "cmdline").read_text().strip()],
        check=True, env=env, capture_output=True,
    )  # fmt: skip


async def wait_for(what: str, check: Any, timeout: float = 180.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := await check():
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(what)


async def measure(
    cloud: Cloud, daemons: dict[str, PrivateLibvirtd], s3_env: dict[str, str], rounds: int
) -> dict[str, Any]:
    a, b = HOSTS
    states = {host: start_agent(cloud, host, daemons[host], s3_env) for host in (a,)}
    async with KubeClient(from_kubeconfig(cloud.access.kubeconfig)) as client:

        async def host_ready(host: str) -> bool:
            try:
                body = await client.get(HOST_KIND, host)
            except NotFound:
                return False
            conditions = (body.get("status") or {}).get("conditions") or []
            return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

        await wait_for(f"{a} Ready", lambda: host_ready(a))
        instance = {
            "apiVersion": INSTANCES.api_version,
            "kind": INSTANCES.kind,
            "metadata": {"name": "mover", "namespace": NAMESPACE},
            "spec": {"flavor": "mig.tiny", "image": "mig-guest",
                     "userData": "#cloud-config\nkubenova-test-tick-ms: 100\n"},
        }  # fmt: skip
        created = await client.create(INSTANCES, instance, NAMESPACE)
        uid = created["metadata"]["uid"]

        async def running() -> bool:
            body = await client.get(INSTANCES, "mover", NAMESPACE)
            return (body.get("status") or {}).get("phase") == "Running"

        await wait_for("mover Running", running)
        # The second host joins once the guest runs on the first (the only host until then).
        states[b] = start_agent(cloud, b, daemons[b], s3_env)
        await wait_for(f"{b} Ready", lambda: host_ready(b))
        logs = [states[h] / "instances" / domain_name_for(uid) / "console.log" for h in HOSTS]
        ticks = Ticks(logs)
        jobs = JobWatch({h: daemons[h].uri for h in HOSTS}, uid)
        moves: list[dict[str, Any]] = []
        try:
            await asyncio.to_thread(ticks.wait_past, 5)
            for n in range(rounds):
                source, target = (a, b) if n % 2 == 0 else (b, a)
                first = ticks.last()
                timeline = await kubenova_move(client, jobs, f"m{n}", source, target)
                await asyncio.to_thread(ticks.wait_past, ticks.last() + 5)
                moves.append(
                    {
                        "target": "cold" if n == 0 else "warm",
                        "seconds": timeline["Completed"],
                        "job": round(timeline["job_end"] - timeline["job_start"], 3),
                        "pause": round(ticks.pause_since(first), 3),
                        "timeline": timeline,
                    }
                )
            # plain libvirt, same guest, same run, agents stopped (nobody else acts)
            for host in HOSTS:
                cloud.stop(f"agent-{host}")
            plain: list[dict[str, float]] = []
            where = a if rounds % 2 == 0 else b
            conns = jobs.connections
            base = backing_of(states[where] / "instances" / domain_name_for(uid) / "disk.qcow2")
            for _ in range(rounds):
                other = b if where == a else a
                first = ticks.last()
                stop = threading.Event()
                job = asyncio.create_task(asyncio.to_thread(jobs.watch, where, other, stop))
                started = time.perf_counter()
                await asyncio.to_thread(
                    plain_migrate,
                    conns[where].lookupByName(domain_name_for(uid)),
                    daemons[other].uri,
                    states[where] / "instances" / domain_name_for(uid),
                    states[other] / "instances" / domain_name_for(uid),
                    base,
                )
                seconds = time.perf_counter() - started
                stop.set()
                marks = await job
                await asyncio.to_thread(ticks.wait_past, ticks.last() + 5)
                plain.append(
                    {
                        "seconds": round(seconds, 3),
                        "pause": round(ticks.pause_since(first), 3),
                        "job": round(marks["job_end"] - marks["job_start"], 3),
                    }
                )
                shutil.rmtree(states[where] / "instances" / domain_name_for(uid))
                where = other
            conns[where].lookupByName(domain_name_for(uid)).destroy()
        finally:
            ticks.stop()
            jobs.close()
    return summarise(moves, plain)


def summarise(moves: list[dict[str, Any]], plain: list[dict[str, float]]) -> dict[str, Any]:
    warm = [m for m in moves if m["target"] == "warm"] or moves
    plain_median = statistics.median(p["seconds"] for p in plain)
    breakdown = {
        mark: round(statistics.median(m["timeline"].get(mark, float("nan")) for m in warm), 3)
        for mark in MARKS
    }
    return {
        "rounds": len(moves),
        "memory_mib": 128,
        "guest": "TCG",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "kubenova": {
            "warm_seconds_median": round(statistics.median(m["seconds"] for m in warm), 3),
            "cold_seconds": moves[0]["seconds"],
            "job_seconds_median": round(statistics.median(m["job"] for m in moves), 3),
            "pause_median": round(statistics.median(m["pause"] for m in moves), 3),
            "pause_max": max(m["pause"] for m in moves),
            "timeline_median_warm": breakdown,
            "moves": moves,
        },
        "plain_libvirt": {
            "seconds_median": round(plain_median, 3),
            "job_seconds_median": round(statistics.median(p["job"] for p in plain), 3),
            "pause_median": round(statistics.median(p["pause"] for p in plain), 3),
            "pause_max": max(p["pause"] for p in plain),
            "moves": plain,
        },
        "ratio_warm": round(statistics.median(m["seconds"] for m in warm) / plain_median, 2),
        "ratio_cold": round(moves[0]["seconds"] / plain_median, 2),
        "target_ratio": TARGET_RATIO,
    }


def start_agent(cloud: Cloud, host: str, daemon: PrivateLibvirtd, s3_env: dict[str, str]) -> Path:
    """A compute agent on `daemon`, publishing its migration endpoint on loopback; its log
    at INFO level (timestamped steps) where --log-dir keeps it."""
    verbose = ("--log-level=INFO",) if os.environ.get(VERBOSE_ENV) else ()
    return cloud.start_agent(
        host,
        capacity="vcpus=4,memoryMiB=2048,diskGiB=20",
        libvirt_uri=daemon.uri,
        env=s3_env,
        extra=("--services=compute", "--underlay-ip=127.0.0.1", *verbose),
    )


def run(rounds: int, log_dir: Path | None) -> dict[str, Any]:
    image = guest_image()
    with local_cloud() as cloud, tempfile.TemporaryDirectory(prefix="kn-bmig-") as scratch:
        work = Path(scratch)
        store = ObjectStore(work / "s3")
        s3 = store.up()
        daemons = {
            host: PrivateLibvirtd(
                work / host, host_uuid=str(uuid.uuid4()), migration_ports=free_ports()
            )
            for host in HOSTS
        }
        try:
            for daemon in daemons.values():
                daemon.start()
            upload_image(cloud, image, s3.env())
            cloud.access.kubectl("create", "namespace", NAMESPACE)
            flavor = {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "Flavor",
                "metadata": {"name": "mig.tiny"},
                "spec": {"vcpus": 1, "memoryMiB": 128, "diskGiB": 1},
            }
            cloud.access.kubectl("apply", "-f", "-", input=json.dumps(flavor))
            cloud.start_operator()
            return asyncio.run(measure(cloud, daemons, s3.env(), rounds))
        finally:
            if log_dir is not None:
                log_dir.mkdir(parents=True, exist_ok=True)
                for log in cloud.root.glob("*.log"):
                    shutil.copy(log, log_dir / log.name)
            for name in list(cloud.processes):
                cloud.stop(name)
            for daemon in daemons.values():
                daemon.stop()
            store.down()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="moves each way (kubenova, plain)")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--log-dir", type=Path, help="keep the operator's and agents' logs here")
    args = parser.parse_args()
    if args.rounds < 2:
        parser.error("--rounds: at least 2 (the first move's target is cold, the rest warm)")
    if args.log_dir is not None:
        os.environ[VERBOSE_ENV] = "1"
    summary = run(args.rounds, args.log_dir)
    if args.json:
        print(json.dumps(summary))
        return
    ours, plain = summary["kubenova"], summary["plain_libvirt"]
    print(f"load average {summary['load_average']}")
    print(f"kubenova apply -> Completed: warm target {ours['warm_seconds_median']:.2f} s "
          f"(median), cold target {ours['cold_seconds']:.2f} s; guest pause "
          f"{ours['pause_median']:.3f} s median / {ours['pause_max']:.3f} s max")  # fmt: skip
    print("  timeline (warm, median, s from creation): " + ", ".join(
        f"{mark} {at:.3f}" for mark, at in ours["timeline_median_warm"].items()))  # fmt: skip
    print(f"plain libvirt: {plain['seconds_median']:.2f} s (median); its job "
          f"{plain['job_seconds_median']:.2f} s, kubenova's {ours['job_seconds_median']:.2f} s; "
          "guest pause "
          f"{plain['pause_median']:.3f} s median / {plain['pause_max']:.3f} s max")  # fmt: skip
    print(f"kubenova / plain: warm {summary['ratio_warm']}x, cold {summary['ratio_cold']}x "
          f"(target {TARGET_RATIO}x)")  # fmt: skip


if __name__ == "__main__":
    main()
