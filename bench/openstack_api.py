"""`openstack server list` with many servers: how long `kubenova api` takes to answer.

    python -m bench.openstack_api --servers 1000 --json
    python -m bench.openstack_api --upload-mib 256 --json


A real apiserver holds `servers` Instances in one project's namespace; `kubenova api` runs
as a process. The figure is what a client on loopback waits for `GET /servers/detail` at
microversion 2.79 (the request `openstack server list` makes), so the server's time plus
one loopback hop; the target is 300 ms at 1,000 servers. Reads come from the API's watch
cache, so the apiserver is not asked per request; tokens are checked locally.

`--upload-mib N` measures an image upload instead (`POST /v2/images` + `PUT .../file` of N
MiB, streamed from the client, into a MinIO started for it): MiB/s, and the API process's
peak RSS before and after, which must not grow with N (the body is never held whole).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from bench._cloud import Cloud, local_cloud
from kubenova.api.v1alpha1 import Instance
from kubenova.devcluster.objectstore import ObjectStore, ensure_minio
from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.kube.paths import NAMESPACES
from kubenova.operator import inventory as inv
from kubenova.operator.auth import Role
from kubenova.operator.auth import db as auth_db

INSTANCES = kubenova_kind(Instance)
PROJECT = "bench"
USER = "bench-user"
PASSWORD = "bench-password"  # a throwaway user of a throwaway cloud
TARGET_MS = 300.0


async def fill(cloud: Cloud, servers: int) -> None:
    """`servers` Instances (no operator runs: they stay as created, which the list shows)."""
    async with KubeClient(load_config(cloud.access.kubeconfig), user_agent="bench") as client:
        await client.create(NAMESPACES, {"metadata": {"name": PROJECT}})
        project = {
            "apiVersion": "kubenova.io/v1alpha1",
            "kind": "Project",
            "metadata": {"name": PROJECT},
            "spec": {},
        }
        await client.request("POST", "/apis/kubenova.io/v1alpha1/projects", body=project)
        gate = asyncio.Semaphore(16)

        async def one(i: int) -> None:
            body = {
                "apiVersion": "kubenova.io/v1alpha1",
                "kind": "Instance",
                "metadata": {"name": f"vm-{i:05d}"},
                "spec": {"flavor": "m1.tiny", "image": "img", "networks": [{"network": "net"}]},
            }
            async with gate:
                await client.create(INSTANCES, body, PROJECT)

        await asyncio.gather(*(one(i) for i in range(servers)))


async def measure(url: str, servers: int, rounds: int) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session:
        token = await login(session, url)
        headers = {"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.79"}
        detail = f"{url}/compute/v2.1/servers/detail"
        for _ in range(60):  # until the watch cache holds them all
            async with session.get(detail, headers=headers) as response:
                if len((await response.json())["servers"]) == servers:
                    break
            await asyncio.sleep(0.5)
        else:
            raise SystemExit(f"the API never listed {servers} servers")
        times = []
        size = 0
        for _ in range(rounds):
            started = time.perf_counter()
            async with session.get(detail, headers=headers) as response:
                payload = await response.read()
            times.append((time.perf_counter() - started) * 1000)
            size = len(payload)
    return {
        "servers": servers,
        "rounds": rounds,
        "p50_ms": round(statistics.median(times), 1),
        "p95_ms": round(sorted(times)[int(0.95 * (len(times) - 1))], 1),
        "max_ms": round(max(times), 1),
        "bytes": size,
        "target_ms": TARGET_MS,
    }


async def login(session: aiohttp.ClientSession, url: str) -> str:
    auth = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {"user": {"name": USER, "password": PASSWORD}},
            },
            "scope": {"project": {"name": PROJECT}},
        }
    }
    async with session.post(f"{url}/identity/v3/auth/tokens", json=auth) as response:
        response.raise_for_status()
        return response.headers["X-Subject-Token"]


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise SystemExit(f"no VmHWM for process {pid}")


async def measure_upload(url: str, mib: int, pid: int) -> dict[str, Any]:
    block = b"\x01" * (1024 * 1024)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(mib):
            yield block

    before = peak_rss_mib(pid)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3600)) as session:
        headers = {"X-Auth-Token": await login(session, url)}
        image = {"name": "bench-upload", "disk_format": "raw", "container_format": "bare"}
        async with session.post(f"{url}/image/v2/images", json=image, headers=headers) as made:
            made.raise_for_status()
            ident = (await made.json())["id"]
        started = time.perf_counter()
        put = f"{url}/image/v2/images/{ident}/file"
        octets = headers | {"Content-Type": "application/octet-stream"}
        async with session.put(put, data=body(), headers=octets) as response:
            if response.status != 204:
                raise SystemExit(f"upload refused: {response.status} {await response.text()}")
        elapsed = time.perf_counter() - started
        async with session.get(f"{url}/image/v2/images/{ident}", headers=headers) as shown:
            view = await shown.json()
    if view["status"] != "active" or view["size"] != mib * 1024 * 1024:
        raise SystemExit(f"the uploaded image is not whole: {view}")
    return {
        "upload_mib": mib,
        "seconds": round(elapsed, 2),
        "mib_per_s": round(mib / elapsed, 1),
        "api_peak_rss_mib_before": before,
        "api_peak_rss_mib_after": peak_rss_mib(pid),
    }


def run(servers: int, rounds: int, upload_mib: int = 0) -> dict[str, Any]:
    with local_cloud() as cloud, contextlib.ExitStack() as stack:
        engine = inv.make_engine(cloud.database_url)
        auth_db.create_user(engine, USER, password=PASSWORD)
        auth_db.create_project(engine, PROJECT)
        auth_db.grant(engine, USER, PROJECT, Role.MEMBER)
        engine.dispose()
        env = {}
        if upload_mib:
            store = ObjectStore(cloud.root / "s3", binary=ensure_minio(progress=print))
            stack.callback(store.down)
            env = store.up().env()
            # The uploader may create Images (a cloud administrator's right).
            for argv in (
                ("create", "clusterrole", "bench-images", "--verb=create",
                 "--resource=images.kubenova.io"),
                ("create", "clusterrolebinding", "bench-images", "--clusterrole=bench-images",
                 f"--user={USER}"),
            ):  # fmt: skip
                cloud.access.kubectl(*argv)
        asyncio.run(fill(cloud, 0 if upload_mib else servers))  # the Project, at least
        port_file = cloud.root / "api.port"
        cloud.start(
            "api",
            [
                sys.executable, "-m", "kubenova.cli", "api",
                f"--kubeconfig={cloud.access.kubeconfig}", f"--url={cloud.database_url}",
                "--port=0", f"--port-file={port_file}",
            ],
            env=env,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text().strip():
            if time.monotonic() > deadline:
                raise SystemExit(f"kubenova api did not start: {cloud.log('api').read_text()}")
            time.sleep(0.2)
        url = f"http://127.0.0.1:{int(port_file.read_text())}"
        if upload_mib:
            return asyncio.run(measure_upload(url, upload_mib, cloud.processes["api"].pid))
        return asyncio.run(measure(url, servers, rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--upload-mib", type=int, default=0, help="Measure an image upload of this size instead."
    )
    parser.add_argument("--json", action="store_true", help="Print the result as JSON.")
    args = parser.parse_args()
    result = run(args.servers, args.rounds, args.upload_mib)
    if args.json:
        print(json.dumps(result))
    elif args.upload_mib:
        print(
            f"image upload of {result['upload_mib']} MiB: {result['seconds']} s "
            f"({result['mib_per_s']} MiB/s); API peak RSS {result['api_peak_rss_mib_before']} "
            f"-> {result['api_peak_rss_mib_after']} MiB"
        )
    else:
        print(
            f"server list ({result['servers']} servers, detail, 2.79): p50 {result['p50_ms']} ms, "
            f"p95 {result['p95_ms']} ms, max {result['max_ms']} ms "
            f"(target {TARGET_MS:.0f} ms; {result['bytes']} bytes)"
        )


if __name__ == "__main__":
    main()
