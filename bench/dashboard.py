"""The dashboard's first page load with 1,000 Instances, live-update latency and server RSS.

    python -m bench.dashboard --instances 1000 --json

A real apiserver holds one project with `--instances` Instances (status written as Running
on a host, as the operator would); `kubenova dashboard` runs as a process under its
impersonation-only identity; headless Debian chromium logs in as a member and loads the
Instances page `--loads` times. Figures are the browser's own Navigation Timing (from
navigation start): responseEnd (the HTML is in), domContentLoaded and loadEventEnd (CSS and
JS in, page usable). Then `--watchers` users keep the live list open and the server's RSS
is read; one Instance's status changes and the time until every open page shows it is taken.
Last, the same users become cloud readers and open the Hosts page, whose stream watches every
Instance (the per-host counts): the server's RSS again.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench._cloud import Cloud, local_cloud
from kubenova.api.v1alpha1 import Instance, Project
from kubenova.dashboard import rbac
from kubenova.kube import KubeClient, kubenova_kind, load_config
from kubenova.operator import inventory as inv
from kubenova.operator.auth import Member, Role
from kubenova.operator.auth import db as auth_db
from kubenova.operator.auth.rbac import cluster_roles, role_bindings

INSTANCES = kubenova_kind(Instance)
PROJECTS = kubenova_kind(Project)
PROJECT = "bench"
PASSWORD = "bench password"
CHROMIUM = "/usr/lib/chromium/chromium"
# What keeps Chromium off the network and quiet here (see /work/shared/RUNBOOK.md).
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


# Records when the first row's phase cell turns Stopped (performance.now() of the page).
SEEN_STOPPED = """() => new MutationObserver(() => {
  const cell = document.querySelector('tr[data-name="vm-0000"] [data-col="phase"]');
  if (cell && cell.textContent === 'Stopped' && !window.__seen) {
    window.__seen = performance.now();
  }
}).observe(document.getElementById('instances'),
           {subtree: true, childList: true, characterData: true})"""


def _apply(cloud: Cloud, *docs: dict[str, Any]) -> None:
    cloud.access.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
    )


def _free_port() -> int:
    import socket  # noqa: PLC0415

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _fill(cloud: Cloud, count: int) -> None:
    """`count` Instances, placed and Running as far as their status says."""
    client = KubeClient(load_config(cloud.access.kubeconfig))
    try:
        semaphore = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            name = f"vm-{i:04d}"
            body = {
                "apiVersion": INSTANCES.api_version,
                "kind": "Instance",
                "metadata": {"name": name, "namespace": PROJECT},
                "spec": {"flavor": "m1.small", "image": "cirros"},
            }
            status = {
                "status": {
                    "phase": "Running",
                    "host": f"compute-{i % 20:02d}",
                    "addresses": [
                        {
                            "network": "net",
                            "ip": f"10.1.{i // 250}.{i % 250 + 2}",
                            "mac": "fa:16:3e:00:00:01",
                        }
                    ],
                }
            }
            async with semaphore:
                await client.create(INSTANCES, body, PROJECT)
                await client.patch(INSTANCES, name, status, PROJECT, subresource="status")

        await asyncio.gather(*(one(i) for i in range(count)))
    finally:
        await client.close()


def _cloud_readers(users: list[str]) -> list[dict[str, Any]]:
    """A ClusterRole that may read Hosts and every Instance, bound to `users`."""
    name = "bench-dashboard-cloud-reader"
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": name},
            "rules": [
                {
                    "apiGroups": ["kubenova.io"],
                    "resources": ["hosts", "instances"],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": name},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [
                {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": u} for u in users
            ],
        },
    ]


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(cloud: Cloud, instances: int, loads: int, watchers: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - dev dependency

    users = [f"user{i}" for i in range(max(watchers, 1))]
    engine = inv.make_engine(cloud.database_url)
    auth_db.create_project(engine, PROJECT)
    for user in users:
        auth_db.create_user(engine, user, password=PASSWORD)
        auth_db.grant(engine, user, PROJECT, Role.MEMBER)
    engine.dispose()
    # What the operator's Project controller would make: the namespace and the bindings.
    cloud.access.kubectl("create", "namespace", PROJECT)
    members = [Member(u, Role.MEMBER) for u in users]
    _apply(cloud, *cluster_roles(), *role_bindings(PROJECT, PROJECT, members).values())
    _apply(
        cloud,
        {"apiVersion": PROJECTS.api_version, "kind": "Project", "metadata": {"name": PROJECT}},
    )
    subject = {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bench-dashboard"}
    _apply(cloud, *rbac.manifests(subject))
    started = time.monotonic()
    asyncio.run(_fill(cloud, instances))
    filled_in = time.monotonic() - started
    port = _free_port()
    cloud.start(
        "dashboard",
        [
            sys.executable,
            "-m",
            "kubenova.cli",
            "dashboard",
            f"--kubeconfig={cloud.access.user_kubeconfig('bench-dashboard')}",
            f"--url={cloud.database_url}",
            f"--port={port}",
        ],
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    pid = cloud.processes["dashboard"].pid
    idle_rss = _rss_mib(pid)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pages = []
        for user in users:
            page = browser.new_context().new_page()
            page.goto(f"{base}/login")
            page.fill("#f-user", user)
            page.fill("#f-password", PASSWORD)
            page.click("button:has-text('Log in')")
            page.wait_for_url("**/instances")
            pages.append(page)
        timings = []
        first = pages[0]
        for _ in range(loads):
            first.goto(f"{base}/p/{PROJECT}/instances")
            first.wait_for_load_state("load")
            timings.append(
                first.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
            )
        rows = first.locator("#instances tr").count()
        for page in pages:
            page.locator("#live-state", has_text="live").wait_for()
        watched_rss = _rss_mib(pid)
        # live: one status change, until every open page shows it
        for page in pages:
            page.evaluate("window.__seen = null")
            page.evaluate(SEEN_STOPPED)
        marks = [page.evaluate("performance.now()") for page in pages]
        cloud.access.kubectl(
            "patch",
            "instance",
            "vm-0000",
            "-n",
            PROJECT,
            "--subresource=status",
            "--type=merge",
            "-p",
            '{"status":{"phase":"Stopped"}}',
        )
        for page in pages:
            page.wait_for_function("() => window.__seen !== null", timeout=10_000)
        # time from just before kubectl ran (kubectl's own start-up is in it: an upper bound)
        live = [
            page.evaluate("window.__seen") - mark for page, mark in zip(pages, marks, strict=True)
        ]
        # The heaviest stream: the same users as cloud readers on the Hosts page, each
        # stream watching Hosts and every Instance (for the per-host counts).
        _apply(cloud, *_cloud_readers(users))
        for page in pages:
            page.goto(f"{base}/admin/hosts")
            page.locator('#hosts[data-live="live"]').wait_for(state="attached")
        time.sleep(2)  # the streams' first listing of every Instance
        hosts_rss = _rss_mib(pid)
        browser.close()

    def stats(key: str) -> dict[str, float]:
        values = [t[key] for t in timings]
        return {
            "median_ms": round(statistics.median(values), 1),
            "max_ms": round(max(values), 1),
            "all_ms": [round(v) for v in values],
        }

    return {
        "instances": instances,
        "rows_rendered": rows,
        "loads": loads,
        "response_end": stats("responseEnd"),
        "dom_content_loaded": stats("domContentLoadedEventEnd"),
        "load_event_end": stats("loadEventEnd"),
        "target_ms": 300,
        "watchers": len(pages),
        "live_update_ms_upper_bound": {
            "median": round(statistics.median(live), 1),
            "max": round(max(live), 1),
            "how": "kubectl patch of status (process start included) to the cell changing",
        },
        "server_rss_mib": {
            "idle": round(idle_rss, 1),
            "with_watchers": round(watched_rss, 1),
            "with_watchers_on_admin_hosts": round(hosts_rss, 1),
            "target": round(150e6 / 2**20, 1),  # 150 MB
        },
        "fill_seconds": round(filled_in, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--loads", type=int, default=10)
    parser.add_argument("--watchers", type=int, default=10)
    parser.add_argument("--json", action="store_true", help="print only the JSON result")
    args = parser.parse_args()
    with local_cloud() as cloud:
        result = measure(cloud, args.instances, args.loads, args.watchers)
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
