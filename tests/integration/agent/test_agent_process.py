"""`kubenova-agent` as a process: registers, heart-beats, runs an Instance, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from kubenova.agents.host.registration import HOSTS
from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, NotFound, load_config
from kubenova.kube.paths import LEASES
from kubenova.wellknown import SYSTEM_NAMESPACE, lease_name

from .harness import Body, cluster, eventually, unique

pytestmark = pytest.mark.apiserver


def agent_command() -> list[str]:
    script = shutil.which("kubenova-agent", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.fail("kubenova-agent is not installed: pip install -e .", pytrace=False)
    return [script]


def test_the_agent_process_registers_and_runs_an_instance_on_the_fake_driver(
    apiserver: ClusterAccess, crds_installed: list[str], tmp_path: Path
) -> None:
    host = unique("proc")
    log_file = tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}

    async def scenario() -> tuple[Body, Body, Body]:
        with log_file.open("w") as log:
            process = subprocess.Popen(
                [
                    *agent_command(),
                    f"--host-name={host}",
                    "--services=compute",
                    "--libvirt-uri=test:///default",
                    f"--state-dir={tmp_path / 'state'}",
                    f"--kubeconfig={apiserver.kubeconfig}",
                    "--availability-zone=az-2",
                    "--capacity=vcpus=32,memoryMiB=65536,diskGiB=500",
                    "--underlay-ip=192.0.2.10",
                    "--metrics-port=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        try:
            async with (
                cluster(apiserver) as kube,
                KubeClient(load_config(apiserver.kubeconfig)) as client,
            ):

                async def registered() -> Body:
                    """The Host once the agent has written its status (create comes first)."""
                    try:
                        body = await client.get(HOSTS, host)
                    except NotFound:
                        return {}
                    return body if (body.get("status") or {}).get("capacity") else {}

                async def leased() -> Body:
                    try:
                        return await client.get(LEASES, lease_name(host), SYSTEM_NAMESPACE)
                    except NotFound:
                        return {}

                host_body = await eventually(registered, timeout=30)
                lease = await eventually(leased)
                body = await kube.scheduled_instance(host)

                async def running() -> Body:
                    current = await kube.get(body["metadata"]["name"])
                    assert (current.get("status") or {}).get("phase") == "Running"
                    return current

                instance = await eventually(running, timeout=30)
                return host_body, lease, instance
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=15)
            assert code == 0, log_file.read_text()

    host_body, lease, instance = asyncio.run(scenario())

    assert host_body["spec"]["availabilityZone"] == "az-2"
    assert host_body["status"]["capacity"] == {"vcpus": 32, "memoryMiB": 65536, "diskGiB": 500}
    assert host_body["status"]["domainType"] == "qemu"
    assert host_body["status"]["underlayIP"] == "192.0.2.10"
    assert lease["spec"]["holderIdentity"] == host
    assert instance["status"]["domain"]["name"] == f"kubenova-{instance['metadata']['uid']}"
    assert "Traceback" not in log_file.read_text()


def test_the_agent_refuses_unknown_services() -> None:
    result = subprocess.run(
        [*agent_command(), "--host-name=x", "--services=compute,storage"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )

    assert result.returncode == 2
    assert "comma-separated subset of compute,volume,network" in result.stderr


def test_the_agent_has_no_database_options() -> None:
    result = subprocess.run(
        [*agent_command(), "--help"], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0
    assert "--libvirt-uri" in result.stdout
    for word in ("database", "postgres", "--db", "sql"):
        assert word not in result.stdout.lower()
