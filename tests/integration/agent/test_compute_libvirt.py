"""The compute service with real libvirt, real S3 and a real guest (TCG) through its lifecycle."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.compute.driver import DomainState
from kubenova.agents.compute.libvirt_qemu import LibvirtDriver, LibvirtSettings
from kubenova.agents.compute.references import IMAGES
from kubenova.agents.images import ImageService
from kubenova.agents.images.s3 import S3ImageStore
from kubenova.devcluster import ClusterAccess
from kubenova.kube import NotFound
from kubenova.kube.paths import SECRETS

from .harness import Body, Cluster, cluster, compute_agent, eventually, unique

pytestmark = [pytest.mark.apiserver, pytest.mark.libvirt, pytest.mark.slow]


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def phase_is(kube: Cluster, name: str, phase: str) -> Body:
    body = await kube.get(name)
    assert (body.get("status") or {}).get("phase") == phase, body.get("status")
    return body


def markers(log: Path, marker: str) -> int:
    return log.read_text(errors="replace").count(marker) if log.exists() else 0


@dataclass(frozen=True)
class UploadedGuest:
    """The test guest's disk in a bucket of the real S3 server."""

    s3: Any
    bucket: str
    key: str
    sha256: str
    ready_marker: str


@pytest.fixture
def uploaded_guest(test_image: Any, s3: Any, s3_bucket: str) -> UploadedGuest:
    key = "guests/test-guest.qcow2"
    s3.client.fput_object(s3_bucket, key, str(test_image.disk_qcow2))
    return UploadedGuest(
        s3, s3_bucket, key, sha256_of(test_image.disk_qcow2), test_image.ready_marker
    )


@pytest.mark.usefixtures("crds_installed")
def test_a_real_guest_boots_stops_starts_reboots_and_is_deleted(
    apiserver: ClusterAccess, libvirtd: Any, uploaded_guest: UploadedGuest, tmp_path: Path
) -> None:
    s3, sha = uploaded_guest.s3, uploaded_guest.sha256
    instances_dir = tmp_path / "instances"
    driver = LibvirtDriver(
        LibvirtSettings(
            uri=libvirtd.uri,
            instances_dir=instances_dir,
            domain_type="qemu",
            shutdown_timeout=10.0,
        )
    )
    marker = uploaded_guest.ready_marker

    async def scenario() -> dict[str, Any]:
        facts: dict[str, Any] = {}
        async with cluster(apiserver) as kube:
            image = unique("guest")
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "store", "namespace": kube.namespace},
                "stringData": {
                    "accessKey": s3.access_key,
                    "secretKey": s3.secret_key,
                    "endpoint": s3.url,
                },
            }
            await kube.client.create(SECRETS, secret, kube.namespace)
            source = {
                "bucket": uploaded_guest.bucket,
                "key": uploaded_guest.key,
                "credentialsSecret": {"name": "store", "namespace": kube.namespace},
            }
            await kube.client.create(
                IMAGES,
                {
                    "apiVersion": IMAGES.api_version,
                    "kind": IMAGES.kind,
                    "metadata": {"name": image},
                    "spec": {"source": source, "format": "qcow2", "sha256": sha},
                },
            )
            store = S3ImageStore(tmp_path / "images")
            async with compute_agent(
                apiserver,
                driver,
                host=unique("kvm"),
                images=ImageService(kube.client, store),
            ) as agent:
                body = await kube.scheduled_instance(agent.host, image=image)
                name, uid = body["metadata"]["name"], body["metadata"]["uid"]
                running = await eventually(lambda: phase_is(kube, name, "Running"), timeout=60)
                facts["writes_to_running"] = agent.writes
                facts["downloads"] = store.download_count
                log = Path(running["status"]["console"]["logPath"])
                facts["log"] = log

                async def booted(count: int) -> bool:
                    return markers(log, marker) >= count

                await eventually(lambda: booted(1), timeout=60, what="the guest's ready marker")
                # The resync reads the console into status.
                await agent.service.resync()
                await agent.service.watch.queue.drained()
                facts["tail"] = (await kube.get(name))["status"]["console"].get("tail", "")

                await kube.patch_spec(name, {"powerState": "Stopped"})
                await eventually(lambda: phase_is(kube, name, "Stopped"), timeout=60)
                facts["stopped_state"] = driver.get_info(uid).state
                await kube.patch_spec(name, {"powerState": "Running"})
                await eventually(lambda: phase_is(kube, name, "Running"), timeout=60)
                await eventually(lambda: booted(2), timeout=60, what="a second boot")
                # The guest prints its marker just before it starts acpid; an ACPI reboot
                # pressed before that is lost (as on any OS still booting).
                await asyncio.sleep(2)

                await kube.patch_spec(name, {"restartRequestedAt": "2025-06-01T12:00:00Z"})
                await eventually(lambda: booted(3), timeout=60, what="the reboot")
                await agent.service.watch.queue.drained()
                await asyncio.sleep(3)  # a second reboot, if any, would show by now
                await agent.service.watch.queue.drained()
                facts["boots_after_reboot"] = markers(log, marker)
                current = await phase_is(kube, name, "Running")
                facts["restarted_at"] = current["status"].get("restartedAt")
                facts["events"] = [e["reason"] for e in await kube.events_for(name)]

                await kube.delete(name)

                async def agent_finished() -> bool:
                    body = await kube.get(name)
                    return "kubenova.io/agent" not in body["metadata"]["finalizers"]

                await eventually(agent_finished, timeout=60)
                await kube.release(name)
                facts["domains_left"] = [info.uid for info in driver.list_instances()]
                facts["files_left"] = sorted(p.name for p in instances_dir.glob("kubenova-*"))
                facts["cached"] = sorted(p.name for p in (tmp_path / "images").glob("*.qcow2"))
                try:
                    await kube.get(name)
                    facts["instance_left"] = True
                except NotFound:
                    facts["instance_left"] = False
        return facts

    try:
        facts = asyncio.run(scenario())
    finally:
        for info in driver.list_instances():
            driver.destroy(info.uid)
        driver.close()

    assert facts["downloads"] == 1
    # A download that outlasts `building_after` shows Building first: at most 2 writes.
    assert facts["writes_to_running"] <= 2
    assert marker in facts["tail"]
    assert facts["stopped_state"] == DomainState.SHUTOFF
    assert facts["boots_after_reboot"] == 3, "the restart request rebooted more than once"
    assert facts["restarted_at"] == "2025-06-01T12:00:00Z"
    assert "DomainRestarted" not in facts["events"], facts["events"]
    assert facts["domains_left"] == []
    assert facts["files_left"] == []
    assert facts["cached"] == [f"{sha}.qcow2"], "the base image stays cached for the next one"
