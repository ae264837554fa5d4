"""The agent's compute service on the fake driver, against the real kube-apiserver."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kubenova.agents.compute.driver import ComputeFailure, DomainState, HypervisorUnavailable
from kubenova.agents.compute.reconciler import INSTANCES
from kubenova.agents.compute.spec import DomainSpec
from kubenova.agents.images.fake import Placeholder, PlaceholderImages
from kubenova.agents.images.fetcher import KernelBoot
from kubenova.devcluster import ClusterAccess
from kubenova.kube import NotFound
from kubenova.kube.objects import apply_status
from kubenova.wellknown import AGENT_FINALIZER, OPERATOR_FINALIZER, OPERATOR_MANAGER

from .harness import (
    Body,
    Cluster,
    CountingFakeDriver,
    RunningAgent,
    cluster,
    compute_agent,
    create_image,
    eventually,
    unique,
)

pytestmark = pytest.mark.apiserver


def ready_of(body: Body) -> Body:
    ready: list[Body] = [c for c in body["status"]["conditions"] if c["type"] == "Ready"]
    assert len(ready) == 1, body["status"]["conditions"]
    return ready[0]


async def phase_is(kube: Cluster, name: str, phase: str) -> Body:
    body = await kube.get(name)
    assert (body.get("status") or {}).get("phase") == phase, body.get("status")
    return body


def run(scenario: Any) -> Any:
    return asyncio.run(scenario)


@pytest.fixture
def driver(tmp_path: Path) -> Any:
    fake = CountingFakeDriver(tmp_path / "fake")
    yield fake
    fake.close()


def test_a_scheduled_instance_runs_with_one_agent_write(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> tuple[Body, RunningAgent]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            body = await kube.scheduled_instance(agent.host)
            name = body["metadata"]["name"]
            running = await eventually(lambda: phase_is(kube, name, "Running"))
            await agent.service.watch.queue.drained()
            return running, agent

    body, agent = run(scenario())

    status = body["status"]
    uid = body["metadata"]["uid"]
    assert ready_of(body)["status"] == "True"
    assert status["domain"] == {
        "uuid": uid,
        "name": f"kubenova-{uid}",
        "type": "qemu",
        "vcpus": 1,
        "memoryMiB": 96,
    }
    assert status["observedGeneration"] == body["metadata"]["generation"]
    # The operator's fields and condition are untouched by the agent's apply.
    assert status["host"] == agent.host
    assert [c["type"] for c in status["conditions"]] == ["Scheduled", "Ready"]
    (domain,) = driver.list_instances()
    assert domain.uid == uid
    assert domain.state == DomainState.RUNNING
    # Operator 2 writes + agent 1 = 3 per Instance from create to Running (target <= 4).
    assert dict(agent.client.writes) == {"PATCH instances/status": 1}


def test_power_state_stopped_then_running_converges(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> list[DomainState]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            await eventually(lambda: phase_is(kube, name, "Running"))
            seen: list[DomainState] = []
            await kube.patch_spec(name, {"powerState": "Stopped"})
            stopped = await eventually(lambda: phase_is(kube, name, "Stopped"))
            seen.append(driver.list_instances()[0].state)
            assert ready_of(stopped)["reason"] == "Stopped"
            await kube.patch_spec(name, {"powerState": "Running"})
            await eventually(lambda: phase_is(kube, name, "Running"))
            seen.append(driver.list_instances()[0].state)
            return seen

    assert run(scenario()) == [DomainState.SHUTOFF, DomainState.RUNNING]


def test_an_instance_created_stopped_is_defined_but_not_running(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> Body:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            body = await kube.scheduled_instance(agent.host, powerState="Stopped")
            return await eventually(lambda: phase_is(kube, body["metadata"]["name"], "Stopped"))

    run(scenario())

    (domain,) = driver.list_instances()
    assert domain.state == DomainState.SHUTOFF


def test_each_new_restart_request_reboots_exactly_once(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    first, second = "2025-01-01T10:00:00Z", "2025-01-01T11:00:00Z"

    async def scenario() -> list[int]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            await eventually(lambda: phase_is(kube, name, "Running"))
            reboots = [driver.calls.get("reboot", 0)]
            await kube.patch_spec(name, {"restartRequestedAt": first})

            async def restarted(value: str) -> bool:
                return bool((await kube.get(name))["status"].get("restartedAt") == value)

            await eventually(lambda: restarted(first))
            # Further passes over the same request (a resync, a restarted agent) do nothing.
            await agent.service.resync()
            await agent.service.watch.queue.drained()
            reboots.append(driver.calls.get("reboot", 0))
            await kube.patch_spec(name, {"restartRequestedAt": second})
            await eventually(lambda: restarted(second))
            await agent.service.watch.queue.drained()
            reboots.append(driver.calls.get("reboot", 0))
            return reboots

    assert run(scenario()) == [0, 1, 2]


def test_delete_destroys_the_domain_and_removes_only_the_agent_finalizer(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> tuple[Body, int]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            await eventually(lambda: phase_is(kube, name, "Running"))
            before = agent.writes
            await kube.delete(name)

            async def agent_done() -> Body:
                body = await kube.get(name)
                assert AGENT_FINALIZER not in body["metadata"]["finalizers"]
                return body

            body = await eventually(agent_done)
            writes = agent.writes - before
            await kube.release(name)

            async def gone() -> bool:
                try:
                    await kube.get(name)
                except NotFound:
                    return True
                return False

            await eventually(gone)
            return body, writes

    body, writes = run(scenario())

    assert body["metadata"]["finalizers"] == [OPERATOR_FINALIZER]
    assert driver.list_instances() == []
    assert not any(driver.state_dir.glob("kubenova-*")), "the overlay directory is left"
    assert writes == 1  # the finalizer removal, nothing else


def test_a_restarted_agent_adopts_the_domain_without_writes(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    host = unique("h")

    async def scenario() -> tuple[str, int]:
        async with cluster(apiserver) as kube:
            async with compute_agent(apiserver, driver, host=host):
                name = (await kube.scheduled_instance(host))["metadata"]["name"]
                await eventually(lambda: phase_is(kube, name, "Running"))
            uuid_before = driver.list_instances()[0].domain_uuid
            # A new process: nothing remembered, same hypervisor.
            async with compute_agent(apiserver, driver, host=host) as second:
                await second.service.watch.queue.drained()
                await phase_is(kube, name, "Running")
                return uuid_before, second.writes

    uuid_before, writes = run(scenario())

    (domain,) = driver.list_instances()
    assert domain.domain_uuid == uuid_before
    assert driver.calls["spawn"] == 1
    assert writes == 0


def test_an_orphan_domain_is_destroyed_after_the_first_list(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    orphan = "0d3f9a52-7c1e-4c4a-9d0e-5b6a7c8d9e0f"
    driver.spawn(
        DomainSpec(
            uid=orphan,
            namespace="gone",
            name="deleted-while-agent-was-down",
            vcpus=1,
            memory_mib=64,
            kernel_boot=KernelBoot(kernel=Path("/nonexistent")),
        )
    )

    async def scenario() -> list[str]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            body = await eventually(lambda: phase_is(kube, name, "Running"))
            return [body["metadata"]["uid"]]

    kept = run(scenario())

    assert [domain.uid for domain in driver.list_instances()] == kept


def test_the_agent_watches_only_instances_placed_on_its_host(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> tuple[Body, Body, Body, RunningAgent]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            unplaced = await kube.an_instance()
            # A label naming this host is nothing: the agent selects by status.host.
            await kube.client.patch(
                INSTANCES,
                unplaced["metadata"]["name"],
                {"metadata": {"labels": {"kubenova.io/host": agent.host}}},
                kube.namespace,
            )
            elsewhere = await kube.scheduled_instance(unique("other-host"))
            mine = await kube.scheduled_instance(agent.host)
            await eventually(lambda: phase_is(kube, mine["metadata"]["name"], "Running"))
            await agent.service.resync()
            await agent.service.watch.queue.drained()
            return (
                await kube.get(unplaced["metadata"]["name"]),
                await kube.get(elsewhere["metadata"]["name"]),
                mine,
                agent,
            )

    unplaced, elsewhere, mine, agent = run(scenario())

    assert "status" not in unplaced
    assert elsewhere["status"]["phase"] == "Scheduled"
    assert len(driver.list_instances()) == 1
    # The queue holds every object the watch delivered: only the one placed on this host.
    meta = mine["metadata"]
    assert agent.service.watch.queue.keys() == [f"{meta['namespace']}/{meta['name']}"]


def test_a_domain_stopped_outside_kubenova_is_restarted_and_reported(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> tuple[Body, list[Body]]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            body = await kube.scheduled_instance(agent.host)
            name, uid = body["metadata"]["name"], body["metadata"]["uid"]
            await eventually(lambda: phase_is(kube, name, "Running"))
            # Someone runs `virsh destroy` behind kubenova's back.
            await asyncio.to_thread(driver.power_off, uid, timeout=0)

            async def restarted() -> Body:
                current = await kube.get(name)
                assert "outside kubenova" in ready_of(current)["message"]
                return current

            current = await eventually(restarted)
            events = await eventually(lambda: kube.events_for(name))
            return current, events

    body, events = run(scenario())

    assert body["status"]["phase"] == "Running"
    assert driver.list_instances()[0].state == DomainState.RUNNING
    assert driver.calls["power_on"] == 1
    assert [e["reason"] for e in events] == ["DomainRestarted"]


def test_a_missing_image_is_an_error_until_the_image_exists(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> tuple[Body, Body]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            image = unique("later")
            name = (await kube.scheduled_instance(agent.host, image=image))["metadata"]["name"]
            failed = await eventually(lambda: phase_is(kube, name, "Error"))
            assert driver.list_instances() == []
            await create_image(kube.client, image)
            running = await eventually(lambda: phase_is(kube, name, "Running"))
            return failed, running

    failed, running = run(scenario())

    ready = ready_of(failed)
    assert ready["status"] == "False"
    assert ready["reason"] == "ImageNotFound"
    assert "kubectl get images" in ready["message"]
    assert ready_of(running)["status"] == "True"


class FailingSpawnDriver(CountingFakeDriver):
    """Defines the domain, then fails as a refusing QEMU would: half-created on purpose."""

    def spawn(self, spec: Any) -> Any:
        super().spawn(spec)
        raise ComputeFailure(f"start {spec.domain_name}: QEMU refused the machine")


def test_a_failed_spawn_leaves_nothing_on_the_host(
    apiserver: ClusterAccess, crds_installed: list[str], tmp_path: Path
) -> None:
    failing = FailingSpawnDriver(tmp_path / "failing")

    async def scenario() -> Body:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, failing, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            return await eventually(lambda: phase_is(kube, name, "Error"))

    try:
        body = run(scenario())
        ready = ready_of(body)
        assert ready["reason"] == "ComputeFailure"
        assert "QEMU refused" in ready["message"]
        assert failing.list_instances() == []
        assert not any(failing.state_dir.glob("kubenova-*"))
    finally:
        failing.close()


class SlowImages(PlaceholderImages):
    """An image download that takes a while."""

    async def fetch(self, name: str, image: Any) -> Placeholder:
        await asyncio.sleep(1.0)
        return await super().fetch(name, image)


def test_a_slow_image_download_shows_building_then_running(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver, tmp_path: Path
) -> None:
    async def scenario() -> tuple[Body, Body, int]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(
                apiserver,
                driver,
                host=unique("h"),
                images=SlowImages(tmp_path / "images"),
                building_after=0.2,
            ) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            building = await eventually(lambda: phase_is(kube, name, "Building"))
            running = await eventually(lambda: phase_is(kube, name, "Running"))
            await agent.service.watch.queue.drained()
            return building, running, agent.writes

    building, running, writes = run(scenario())

    assert ready_of(building)["reason"] == "Building"
    assert "domain" not in building["status"]
    assert ready_of(running)["status"] == "True"
    assert writes == 2


def test_an_instance_moved_to_another_host_leaves_this_one(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    async def scenario() -> list[str]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            body = await eventually(lambda: phase_is(kube, name, "Running"))
            # An evacuation: the operator places it elsewhere, and the field-selector watch
            # (status.host=<this host>) reports it as DELETED here.
            await apply_status(
                kube.client, INSTANCES, body, {"host": "elsewhere"}, manager=OPERATOR_MANAGER
            )

            async def left() -> bool:
                # the domain is gone and the queue has forgotten the key (the handler that
                # destroys the domain returns a moment after the driver is empty)
                domains = await asyncio.to_thread(driver.list_instances)
                return not domains and not agent.service.watch.queue.keys()

            await eventually(left)
            return list(agent.service.watch.queue.keys())

    assert run(scenario()) == []


def test_a_guest_leaving_during_its_move_is_left_to_the_move_then_swept(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    """A migration holds the guest (`moving`): the hand-over's DELETED event leaves its
    domain and files to the move (a cold move's target has the source forget them) but
    forgets it in this process; a domain a move left behind goes with the orphan sweep."""

    async def scenario() -> tuple[list[str], str | None, list[str]]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            body = await kube.scheduled_instance(agent.host)
            name, uid = body["metadata"]["name"], body["metadata"]["uid"]
            body = await eventually(lambda: phase_is(kube, name, "Running"))
            agent.service.reconciler.moving.add(uid)
            await apply_status(
                kube.client, INSTANCES, body, {"host": "elsewhere"}, manager=OPERATOR_MANAGER
            )
            await eventually(lambda: _forgotten(agent, uid))
            kept = [i.uid for i in await asyncio.to_thread(driver.list_instances)]
            known = agent.service.reconciler.key_of_uid(uid)
            agent.service.reconciler.moving.discard(uid)  # the move is over
            await agent.service.sweep_orphans()
            swept = [i.uid for i in await asyncio.to_thread(driver.list_instances)]
            return kept, known, swept

    kept, known, swept = run(scenario())
    assert len(kept) == 1
    assert known is None
    assert swept == []


async def _forgotten(agent: Any, uid: str) -> bool:
    return agent.service.reconciler.key_of_uid(uid) is None


def test_a_deleted_event_the_fresh_read_contradicts_keeps_the_domain(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    """Leaving the watch is re-read before anything is destroyed: status.host decides."""

    async def scenario() -> tuple[list[str], list[str], str]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            body = await kube.scheduled_instance(agent.host)
            name, uid = body["metadata"]["name"], body["metadata"]["uid"]
            key = f"{kube.namespace}/{name}"
            await eventually(lambda: phase_is(kube, name, "Running"))
            # A DELETED event with no truth behind it (a watch that lagged behind a move
            # away and back): the Instance still says this host.
            agent.service.watch.queue.put(key, None)

            async def retained() -> bool:
                return key in agent.service.reconciler.retained

            await eventually(retained, what="the still-placed Instance kept, not destroyed")
            await agent.service.resync()  # rechecked and not swept as an orphan
            await agent.service.watch.queue.drained()
            kept = [i.uid for i in await asyncio.to_thread(driver.list_instances)]
            await kube.delete(name)

            async def torn_down() -> bool:
                domains = await asyncio.to_thread(driver.list_instances)
                fresh = await kube.get(name)
                return not domains and AGENT_FINALIZER not in fresh["metadata"]["finalizers"]

            await eventually(torn_down)
            return kept, [uid], name

    kept, expected, _ = run(scenario())
    assert kept == expected


def test_a_restarted_agent_keeps_what_is_placed_here_and_sweeps_what_was_deleted(
    apiserver: ClusterAccess, crds_installed: list[str], driver: CountingFakeDriver
) -> None:
    """The start-up orphan sweep reads an unexplained domain's Instance before destroying it."""
    host = unique("h")

    async def scenario() -> tuple[list[str], list[str], list[str]]:
        async with cluster(apiserver) as kube:
            async with compute_agent(apiserver, driver, host=host):
                body = await kube.scheduled_instance(host)
                gone = await kube.scheduled_instance(host)  # one that really goes meanwhile
                name = body["metadata"]["name"]
                await eventually(lambda: phase_is(kube, name, "Running"))
                await eventually(lambda: phase_is(kube, gone["metadata"]["name"], "Running"))
            assert len(await asyncio.to_thread(driver.list_instances)) == 2
            # While no agent runs, one is deleted behind its back (finalizers stripped).
            await kube.client.patch(
                INSTANCES,
                gone["metadata"]["name"],
                {"metadata": {"finalizers": None}},
                kube.namespace,
            )
            await kube.delete(gone["metadata"]["name"])
            async with compute_agent(apiserver, driver, host=host):
                kept = [i.uid for i in await asyncio.to_thread(driver.list_instances)]
            return kept, [body["metadata"]["uid"]], [gone["metadata"]["uid"]]

    kept, expected, _ = run(scenario())
    assert kept == expected  # the one placed here kept, the deleted one's domain swept


class AwayDriver(CountingFakeDriver):
    """The fake driver whose libvirtd can be made unreachable, as while it restarts."""

    away = False

    def _lookup(self, uid: str) -> Any:
        if self.away:
            raise HypervisorUnavailable("connect to test:///: Connection refused")
        return super()._lookup(uid)


def test_a_running_instance_stays_running_while_libvirtd_is_away(
    apiserver: ClusterAccess, crds_installed: list[str], tmp_path: Path
) -> None:
    driver = AwayDriver(tmp_path / "fake")

    async def scenario() -> tuple[Body, Body, list[Body]]:
        async with (
            cluster(apiserver) as kube,
            compute_agent(apiserver, driver, host=unique("h")) as agent,
        ):
            name = (await kube.scheduled_instance(agent.host))["metadata"]["name"]
            before = await eventually(lambda: phase_is(kube, name, "Running"))
            await agent.service.watch.queue.drained()
            driver.away = True
            agent.service.watch.mark_all()

            async def said() -> list[Body]:
                events = await kube.events_for(name)
                assert "HypervisorUnavailable" in [e["reason"] for e in events]
                return events

            events = await eventually(said)
            during = await kube.get(name)
            driver.away = False
            return before, during, events

    try:
        before, during, events = run(scenario())
    finally:
        driver.close()

    # Nothing is known about the guest but that it ran: its status stays what was seen.
    assert during["status"] == before["status"]
    assert [e["type"] for e in events] == ["Warning"]
