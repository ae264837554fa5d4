"""Live migration of one 128 MiB TCG guest: kubenova's agent path vs plain libvirt, same run.

    python -m bench.migration --rounds 3 --json

Two private libvirtds (distinct host UUIDs and migration ports) stand for two hosts. One guest
prints a counter to its serial console every 100 ms; a watcher reads both console logs every
10 ms, and the guest's pause is the longest wait between two consecutive ticks around a move.
The guest goes back and forth: a -> b through kubenova (`agents/compute/migration.py`:
`prepare_target` + `LiveMigration`), b -> a with plain libvirt calls as RUNBOOK.md records
them (qemu-img overlay on the target, paths rewritten by hand in the migratable XML,
migrateToURI3 with the same parameters and flags, QEMU's own 300 ms downtime limit where
the agent asks for 100 ms). Each move also reports libvirt's downtime. Only the migration
itself is timed here; the whole path (InstanceMigration apply -> Completed, through the
apiserver, operator and both agents) is timed against plain libvirt in one run by
tests/e2e/test_live_migration_e2e.py.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import libvirt

from kubenova.agents.compute import CloudInitSeed, DomainSpec, RootDisk
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.migration import (
    MIGRATION_FLAGS,
    LiveMigration,
    PeerEndpoint,
    finish_source,
    prepare_target,
)
from kubenova.agents.images.fetcher import KernelBoot
from kubenova.devcluster.libvirtd import PrivateLibvirtd

REPO = Path(__file__).resolve().parents[1]
TICK = re.compile(rb"KUBENOVA-TICK (\d+)")


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
                        # Each move makes a fresh file on the target: read it from the start.
                        inode = log.stat().st_ino
                        known, offset = self._offsets.get(log, (inode, 0))
                        offset = offset if known == inode else 0
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


def plain_migrate(
    source: Any, target_uri: str, source_dir: Path, target_dir: Path, base: Path
) -> None:
    """RUNBOOK's recipe by hand: empty overlay on the same base, seed copied, paths
    rewritten in the migratable XML, then migrateToURI3."""
    shutil.rmtree(target_dir, ignore_errors=True)
    target_dir.mkdir(parents=True)
    backing = str(base)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", backing, "-F", "qcow2",
                    str(target_dir / "disk.qcow2")], check=True)  # fmt: skip
    shutil.copy(source_dir / "seed.iso", target_dir / "seed.iso")
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


def downtime(target: LibvirtDriver, uid: str) -> float:
    """libvirt's own figure for the last move's switch-over (paused on the source to
    running on the target), from the arrived domain's completed job."""
    stats = target.libvirt_domain(uid).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return float(stats.get("downtime", -1))


def run(rounds: int) -> dict[str, Any]:
    image = guest_image()
    manifest = json.loads((image / "manifest.json").read_text())
    roots = [Path(tempfile.mkdtemp(prefix=f"kn-bmig{n}-")) for n in "ab"]
    daemons = [
        PrivateLibvirtd(root, host_uuid=str(uuid.uuid4()), migration_ports=free_ports())
        for root in roots
    ]
    drivers: list[LibvirtDriver] = []
    ticks: Ticks | None = None
    try:
        for daemon in daemons:
            daemon.start()
            drivers.append(
                LibvirtDriver(
                    LibvirtSettings(
                        uri=daemon.uri, instances_dir=daemon.root / "inst", domain_type="qemu"
                    )
                )
            )
        a, b = drivers
        uid = str(uuid.uuid4())
        spec = DomainSpec(
            uid=uid, namespace="bench", name="mover", vcpus=1, memory_mib=128,
            root_disk=RootDisk(image / "disk.qcow2"),
            kernel_boot=KernelBoot(image / "vmlinuz", image / "initrd.img",
                                   manifest.get("cmdline", "console=ttyS0 quiet")),
            seed=CloudInitSeed(f"i-{uid[:8]}", "mover", "kubenova-test-tick-ms: 100\n"),
        )  # fmt: skip
        a.spawn(spec)
        ticks = Ticks([a.files.console_log(uid), b.files.console_log(uid)])
        ticks.wait_past(5)
        results: dict[str, list[dict[str, float]]] = {"kubenova": [], "plain_libvirt": []}
        for _ in range(rounds):
            # kubenova: a -> b
            first = ticks.last()
            started = time.perf_counter()
            prepare_target(b, spec)
            move = LiveMigration(
                a.libvirt_domain(uid),
                PeerEndpoint(b.uri, "127.0.0.1", b.files.instances_dir),
                a.files.directory(uid),
            )
            move.start()
            move.wait(timeout=300)
            seconds = time.perf_counter() - started
            finish_source(a, uid)
            ticks.wait_past(ticks.last() + 5)
            results["kubenova"].append(
                {
                    "seconds": seconds,
                    "pause": ticks.pause_since(first),
                    "downtime_ms": downtime(b, uid),
                }
            )
            # plain libvirt: b -> a
            first = ticks.last()
            started = time.perf_counter()
            plain_migrate(
                b.libvirt_domain(uid),
                a.uri,
                b.files.directory(uid),
                a.files.directory(uid),
                image / "disk.qcow2",
            )
            seconds = time.perf_counter() - started
            b.files.remove(uid)
            ticks.wait_past(ticks.last() + 5)
            results["plain_libvirt"].append(
                {
                    "seconds": seconds,
                    "pause": ticks.pause_since(first),
                    "downtime_ms": downtime(a, uid),
                }
            )
        summary: dict[str, Any] = {"rounds": rounds, "memory_mib": 128, "guest": "TCG"}
        for name, runs in results.items():
            summary[name] = {
                "seconds_median": round(statistics.median(r["seconds"] for r in runs), 3),
                "pause_median": round(statistics.median(r["pause"] for r in runs), 3),
                "pause_max": round(max(r["pause"] for r in runs), 3),
                "downtime_ms_median": statistics.median(r["downtime_ms"] for r in runs),
                "runs": [{k: round(v, 3) for k, v in r.items()} for r in runs],
            }
        summary["ratio_seconds"] = round(
            summary["kubenova"]["seconds_median"] / summary["plain_libvirt"]["seconds_median"], 2
        )
        return summary
    finally:
        if ticks is not None:
            ticks.stop()
        for driver in drivers:
            for info in driver.list_instances():
                driver.destroy(info.uid)
            driver.close()
        for daemon in daemons:
            daemon.stop()
        for root in roots:
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    summary = run(args.rounds)
    if args.json:
        print(json.dumps(summary))
        return
    for name in ("kubenova", "plain_libvirt"):
        line = summary[name]
        print(f"{name:14} migration {line['seconds_median']:.2f} s (median), guest pause "
              f"{line['pause_median']:.3f} s median / {line['pause_max']:.3f} s max, "
              f"libvirt downtime {line['downtime_ms_median']:.0f} ms median")  # fmt: skip
    print(f"kubenova / plain: {summary['ratio_seconds']}x")


if __name__ == "__main__":
    main()
