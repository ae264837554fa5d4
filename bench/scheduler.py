"""Scheduler benchmark: placements per second (decision + durable claim) and decision latency.

    python -m bench.scheduler --json
    python -m bench.scheduler --hosts 1000 --backends sqlite --placements 5000

One process places a backlog of instances with `Placer.place_all` and a warm view, `--batch`
of them per transaction (group commit: one fsync each; `--batch 1` commits every one), on
100 / 1,000 / 10,000 hosts, on a SQLite file (synchronous=FULL: an fsync per commit) and
on a throwaway PostgreSQL started for the run with fsync on. Decision latency is the time
spent in `Scheduler.schedule` alone; a placement also includes the claim transaction.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, insert

from kubenova.operator import inventory as inv
from kubenova.operator.inventory.engine import write_transaction
from kubenova.operator.inventory.models import HostRow, utcnow
from kubenova.operator.placement import MAX_BATCH, HostView, Placer
from kubenova.operator.scheduler import (
    Decision,
    HostState,
    HostTable,
    PlacementRequest,
    Scheduler,
)
from tests.fixtures.postgres import PostgresCluster

FLAVOR = inv.Resources(vcpus=2, memory_mb=4096, disk_gb=20)
HOST = inv.Resources(vcpus=64, memory_mb=262_144, disk_gb=2_000)  # room for 32 of FLAVOR


class TimedScheduler(Scheduler):
    """A Scheduler that records how long each decision took."""

    def __init__(self) -> None:
        super().__init__()
        self.latencies: list[float] = []

    def schedule(
        self, request: PlacementRequest, hosts: HostTable | Sequence[HostState]
    ) -> Decision:
        started = time.perf_counter()
        decision = super().schedule(request, hosts)
        self.latencies.append(time.perf_counter() - started)
        return decision


def add_hosts(engine: Engine, count: int) -> None:
    """Register `count` Ready hosts in one transaction (upsert_host would take one each)."""
    rows = [
        {
            "name": f"host-{i:05d}",
            "availability_zone": f"az{i % 3}",
            "state": "Ready",
            "schedulable": True,
            "services": ["compute"],
            "vcpus": HOST.vcpus,
            "memory_mb": HOST.memory_mb,
            "disk_gb": HOST.disk_gb,
            "vcpu_ratio": 1.0,
            "memory_ratio": 1.0,
            "disk_ratio": 1.0,
            "generation": 0,
            "updated_at": utcnow(),
        }
        for i in range(count)
    ]
    with write_transaction(engine) as connection:
        connection.execute(insert(HostRow), rows)


def run(url: str, backend: str, hosts: int, placements: int, batch: int) -> dict[str, Any]:
    """Fill a fresh inventory at `url` with `hosts` hosts and time `placements` placements,
    `batch` of them per transaction."""
    inv.upgrade(url)
    synchronous = "NORMAL" if backend == "sqlite-normal" else "FULL"
    engine = inv.make_engine(url, sqlite_synchronous=synchronous)
    try:
        add_hosts(engine, hosts)
        scheduler = TimedScheduler()
        placer = Placer(engine, view=HostView(engine, max_age=3600), scheduler=scheduler)
        placer.view.hosts()
        started, cpu_started = time.perf_counter(), time.process_time()
        for first in range(0, placements, batch):
            requests = [
                (PlacementRequest(inv.Consumer(f"bench-{n:06d}", f"vm-{n}", "bench"), FLAVOR), ())
                for n in range(first, min(first + batch, placements))
            ]
            for n, result in enumerate(placer.place_all(requests), start=first):
                if not isinstance(result, inv.Claim):
                    raise RuntimeError(f"placement {n} failed: {result}")
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        engine.dispose()
    latencies = sorted(scheduler.latencies)
    return {
        "backend": backend,
        "hosts": hosts,
        "placements": placements,
        "placements_per_transaction": batch,
        "placements_per_second": round(placements / elapsed, 1),
        "decision_p50_ms": round(statistics.median(latencies) * 1000, 3),
        "decision_p99_ms": round(latencies[math.ceil(len(latencies) * 0.99) - 1] * 1000, 3),
        "mean_placement_ms": round(elapsed / placements * 1000, 3),
        # This process only (not the PostgreSQL server): what a placement costs in CPU,
        # whatever else the machine is doing.
        "client_cpu_ms_per_placement": round(cpu / placements * 1000, 3),
    }


@contextmanager
def databases(backend: str) -> Iterator[Iterator[str]]:
    """Fresh database URLs on one backend, one per configuration."""
    if backend.startswith("sqlite"):
        with tempfile.TemporaryDirectory(prefix="kubenova-bench-") as directory:
            yield (f"sqlite:///{Path(directory) / f'inventory-{n}.db'}" for n in range(1000))
        return
    # The same server-starting code as the test fixture, but with fsync on: durable claims.
    with PostgresCluster(durable=True) as cluster:
        yield (cluster.create_database() for _ in range(1000))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scheduler", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--hosts", default="100,1000,10000", help="comma-separated host counts")
    parser.add_argument(
        "--backends", default="sqlite,postgresql", help="of sqlite, sqlite-normal, postgresql"
    )
    parser.add_argument("--placements", type=int, default=2000)
    parser.add_argument(
        "--batch",
        type=int,
        default=MAX_BATCH,
        help=f"placements per transaction (group commit; default {MAX_BATCH}, 1: one each)",
    )
    args = parser.parse_args(argv)
    host_counts = [int(n) for n in args.hosts.split(",")]
    if args.placements > min(host_counts) * (HOST.memory_mb // FLAVOR.memory_mb):
        parser.error("more placements than the smallest cluster has room for")
    load_at_start = round(os.getloadavg()[0], 2)
    results = []
    for backend in args.backends.split(","):
        with databases(backend) as urls:
            for count in host_counts:
                result = run(next(urls), backend, count, args.placements, args.batch)
                results.append(result)
                if not args.json:
                    print(
                        f"{backend:10} {count:6} hosts, {args.batch:3} per commit: "
                        f"{result['placements_per_second']:8.1f} placements/s, decision "
                        f"p50 {result['decision_p50_ms']:.3f} ms p99 "
                        f"{result['decision_p99_ms']:.3f} ms",
                        file=sys.stderr,
                    )
    report = {
        "benchmark": "scheduler",
        "flavor": {"vcpus": FLAVOR.vcpus, "memory_mb": FLAVOR.memory_mb, "disk_gb": FLAVOR.disk_gb},
        "durability": {
            "sqlite": "WAL, synchronous=FULL (fsync at every commit)",
            "sqlite-normal": "WAL, synchronous=NORMAL (no fsync at commit; survives a crash "
            "of the process, not of the machine)",
            "postgresql": "fsync=on, synchronous_commit=on",
        },
        "machine": {
            "cpus": os.cpu_count(),
            # Other work on the machine slows every figure (fsync most): say how busy it was.
            "load_average_1m_at_start": load_at_start,
            "python": platform.python_version(),
            "sqlalchemy": sqlalchemy.__version__,
        },
        "results": results,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
