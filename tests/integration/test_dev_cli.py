"""`kubenova dev up/status/env/down` as a user runs them; the plane outlives each command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sysconfig
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from kubenova.devcluster import ensure_binaries
from kubenova.devcluster.crds import crd_manifests
from kubenova.devcluster.processes import is_alive, processes_mentioning
from kubenova.devcluster.tgtd import SOCKET_DIR, PrivateTgtd

pytestmark = pytest.mark.apiserver

COMPONENTS = ("etcd", "kube-apiserver")
CRD_DIR = Path(__file__).resolve().parents[2] / "crds"


class DevCli:
    """Runs the installed `kubenova` script with KUBENOVA_DEV_DIR pointing at a temp dir."""

    def __init__(self, state_dir: Path, kubectl: Path) -> None:
        self.state_dir = state_dir
        self.kubectl = str(kubectl)
        self.script = Path(sysconfig.get_path("scripts")) / "kubenova"
        if not self.script.exists():
            pytest.fail(f"{self.script} is missing: run `pip install -e .[dev]`", pytrace=False)

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBENOVA_DEV_DIR": str(self.state_dir)}
        env.pop("KUBECONFIG", None)
        result = subprocess.run(
            [str(self.script), "dev", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if check and result.returncode != 0:
            pytest.fail(
                f"kubenova dev {' '.join(args)} exited {result.returncode}:\n"
                f"{result.stdout}\n{result.stderr}"
            )
        return result

    def pids(self) -> dict[str, int]:
        return {
            name: int((self.state_dir / "run" / f"{name}.pid").read_text()) for name in COMPONENTS
        }

    def leftovers(self) -> list[int]:
        return processes_mentioning(str(self.state_dir), COMPONENTS)


@pytest.fixture
def dev(tmp_path: Path) -> Iterator[DevCli]:
    # A cold build belongs to the fixture, not to a timed step.
    cli = DevCli(tmp_path / "dev", ensure_binaries().kubectl)
    yield cli
    # Whatever a failed test left running must not outlive it.
    for pid in cli.leftovers():
        os.kill(pid, signal.SIGKILL)


def test_up_status_up_again_down(dev: DevCli) -> None:
    up = dev("up")
    kubeconfig = Path(up.stdout.strip())
    first_pids = dev.pids()
    server = yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    status = dev("status")
    tgtd = PrivateTgtd(dev.state_dir / "tgtd")
    tgtd_pid = tgtd.running_pid()
    # The public catalog, as in the chart: any authenticated user reads Flavors and Images.
    catalog = subprocess.run(
        [dev.kubectl, f"--kubeconfig={kubeconfig}", "--as=jane", "get", "flavors,images"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    no_write = subprocess.run(
        [dev.kubectl, f"--kubeconfig={kubeconfig}", "--as=jane", "auth", "can-i", "create",
         "flavors.kubenova.io"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip

    again = dev("up")  # reuse is proven by the unchanged pids, not by a timing
    second_pids = dev.pids()
    dashboard = up.stderr.split("dashboard: http", 1)[1].split()[0]
    with urllib.request.urlopen(f"http{dashboard}healthz", timeout=5) as answer:
        assert answer.status == 200

    env = dev("env")
    down = dev("down")

    assert kubeconfig == dev.state_dir / "admin.kubeconfig"
    assert server.startswith("https://127.0.0.1:")
    assert [line.split()[:2] for line in status.stdout.splitlines()[:2]] == [
        ["etcd", "healthy"],
        ["kube-apiserver", "healthy"],
    ]
    assert Path(again.stdout.strip()) == kubeconfig
    assert dev.state_dir.joinpath("state.json").exists()
    assert yaml.safe_load(kubeconfig.read_text())["clusters"][0]["cluster"]["server"] == server
    assert second_pids == first_pids, "a healthy plane must be reused, not restarted"
    assert "starting" not in again.stderr
    assert not any(is_alive(pid) for pid in first_pids.values())
    assert env.stdout.strip() == f"export KUBECONFIG={kubeconfig}"
    assert "kube-apiserver" in down.stdout
    assert "dashboard" in down.stdout
    assert f"dashboard: http{dashboard}" in again.stderr
    assert "etcd" in down.stdout
    assert dev.leftovers() == []
    # The volume service's tgtd ran (its portal in `status`) and is gone with its socket.
    assert tgtd_pid is not None
    assert f"tgtd            running    pid {tgtd_pid}" in status.stdout
    assert tgtd.portal in status.stdout
    assert "tgtd" in down.stdout
    assert not is_alive(tgtd_pid)
    assert not (SOCKET_DIR / f"socket.{tgtd.control_port}").exists()
    assert catalog.returncode == 0, catalog.stderr
    assert no_write.stdout.strip() == "no"


def test_up_installs_the_crds(dev: DevCli) -> None:
    manifests = crd_manifests(CRD_DIR)
    if not manifests:
        pytest.fail(f"{CRD_DIR} holds no CRD manifests to install", pytrace=False)
    kubeconfig = Path(dev("up").stdout.strip())
    try:
        crds = subprocess.run(
            [dev.kubectl, f"--kubeconfig={kubeconfig}", "get", "crd", "-o", "json"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
    finally:
        dev("down")

    established = {
        item["metadata"]["name"]
        for item in json.loads(crds.stdout)["items"]
        if any(
            c["type"] == "Established" and c["status"] == "True"
            for c in item["status"]["conditions"]
        )
    }
    expected = {yaml.safe_load(path.read_text())["metadata"]["name"] for path in manifests}
    assert expected <= established


def test_a_killed_apiserver_is_restarted_on_the_same_port(dev: DevCli) -> None:
    kubeconfig = Path(dev("up").stdout.strip())
    before = kubeconfig.read_text()
    etcd_pid, apiserver_pid = dev.pids()["etcd"], dev.pids()["kube-apiserver"]
    os.kill(apiserver_pid, signal.SIGKILL)
    while is_alive(apiserver_pid):
        time.sleep(0.02)

    status = dev("status", check=False)
    again = dev("up")
    reachable = subprocess.run(
        [dev.kubectl, f"--kubeconfig={kubeconfig}", "get", "--raw", "/readyz"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    dev("down")

    assert status.returncode == 1
    assert "kube-apiserver  stopped" in status.stdout
    assert "starting kube-apiserver" in again.stderr
    assert "starting etcd" not in again.stderr
    assert not is_alive(etcd_pid)
    assert kubeconfig.read_text() == before, "same port and same CA after a restart"
    assert reachable.stdout.strip() == "ok", reachable.stderr
    assert dev.leftovers() == []
