"""A compute service on the fake driver against the real apiserver, with the test as operator.

The test plays the operator's part with the same kube helpers the operator uses: the
finalizers (what the mutating webhook adds at creation), then one server-side apply of
status host + Scheduled as kubenova-operator. The agent under test has its own client,
so `agent.writes` counts only what the agent wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from kubenova import conditions as cond
from kubenova.agents.compute.driver import ComputeDriver
from kubenova.agents.compute.fake import FakeComputeDriver
from kubenova.agents.compute.reconciler import INSTANCES
from kubenova.agents.compute.references import FLAVORS, IMAGES
from kubenova.agents.compute.service import ComputeService, ComputeSettings
from kubenova.agents.images.fake import PlaceholderImages
from kubenova.agents.images.fetcher import ImageFetcher
from kubenova.devcluster import ClusterAccess
from kubenova.kube import KubeClient, NotFound, load_config
from kubenova.kube.meta import Body
from kubenova.kube.objects import apply_status, ensure_metadata, remove_finalizer
from kubenova.kube.paths import NAMESPACES
from kubenova.wellknown import (
    AGENT_FINALIZER,
    OPERATOR_FINALIZER,
    OPERATOR_MANAGER,
)

T = TypeVar("T")
SHA = "0123456789abcdef" * 4


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = ""
) -> T:
    """Await `probe` until it returns something truthy without an AssertionError."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: object = None
    while True:
        try:
            value = await probe()
            if value:
                return value
            last = value
        except AssertionError as exc:
            last = exc
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}: {last}")
        await asyncio.sleep(0.05)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass
class Cluster:
    """The test's own (operator-like) view of the apiserver: objects it creates and hands over."""

    client: KubeClient
    namespace: str
    flavor: str
    image: str

    async def an_instance(self, name: str | None = None, **spec: Any) -> Body:
        body = {
            "apiVersion": INSTANCES.api_version,
            "kind": INSTANCES.kind,
            "metadata": {"name": name or unique("vm"), "namespace": self.namespace},
            "spec": {"flavor": self.flavor, "image": self.image} | spec,
        }
        return await self.client.create(INSTANCES, body, self.namespace)

    async def hand_over(self, body: Body, host: str) -> Body:
        """What the operator does after claiming: finalizers if missing, then status.host."""
        finalized = await ensure_metadata(
            self.client, INSTANCES, body, finalizers=(OPERATOR_FINALIZER, AGENT_FINALIZER)
        )
        body = finalized or body
        generation = body["metadata"]["generation"]
        status = {
            "phase": "Scheduled",
            "host": host,
            "observedGeneration": generation,
            "conditions": [
                cond.condition(
                    "Scheduled", True, "Scheduled", f"placed on host {host}", generation=generation
                )
            ],
        }
        return await apply_status(self.client, INSTANCES, body, status, manager=OPERATOR_MANAGER)

    async def scheduled_instance(self, host: str, **spec: Any) -> Body:
        return await self.hand_over(await self.an_instance(**spec), host)

    async def get(self, name: str) -> Body:
        return await self.client.get(INSTANCES, name, self.namespace)

    async def patch_spec(self, name: str, spec: Body) -> Body:
        return await self.client.patch(INSTANCES, name, {"spec": spec}, self.namespace)

    async def delete(self, name: str) -> None:
        await self.client.delete(INSTANCES, name, self.namespace)

    async def release(self, name: str) -> None:
        """The operator's half of deletion: drop its finalizer once the agent has gone."""
        with contextlib.suppress(NotFound):
            await remove_finalizer(self.client, INSTANCES, await self.get(name), OPERATOR_FINALIZER)

    async def events_for(self, name: str) -> list[Body]:
        from kubenova.kube.paths import CORE_EVENTS  # noqa: PLC0415

        listing = await self.client.list(
            CORE_EVENTS, self.namespace, field_selector=f"involvedObject.name={name}"
        )
        return list(listing.get("items", []))


@contextlib.asynccontextmanager
async def cluster(apiserver: ClusterAccess) -> AsyncIterator[Cluster]:
    """A fresh namespace, Flavor and Image, and an admin client; removed afterwards."""
    async with KubeClient(load_config(apiserver.kubeconfig)) as client:
        namespace, flavor, image = unique("agent"), unique("tiny"), unique("img")
        await client.create(NAMESPACES, {"metadata": {"name": namespace}})
        await client.create(
            FLAVORS,
            {
                "apiVersion": FLAVORS.api_version,
                "kind": FLAVORS.kind,
                "metadata": {"name": flavor},
                "spec": {"vcpus": 1, "memoryMiB": 96, "diskGiB": 1},
            },
        )
        await create_image(client, image)
        try:
            yield Cluster(client, namespace, flavor, image)
        finally:
            with contextlib.suppress(NotFound):
                await client.delete(FLAVORS, flavor)
            with contextlib.suppress(NotFound):
                await client.delete(IMAGES, image)


async def create_image(client: KubeClient, name: str) -> Body:
    return await client.create(
        IMAGES,
        {
            "apiVersion": IMAGES.api_version,
            "kind": IMAGES.kind,
            "metadata": {"name": name},
            "spec": {
                "source": {"bucket": "images", "key": f"{name}.qcow2"},
                "format": "qcow2",
                "sha256": SHA,
            },
        },
    )


@dataclass
class RunningAgent:
    """A ComputeService running in the background with its own counted client."""

    client: KubeClient
    driver: ComputeDriver
    service: ComputeService
    task: asyncio.Task[None]
    host: str
    seen_paths: list[str] = field(default_factory=list)

    @property
    def writes(self) -> int:
        return sum(self.client.writes.values())


@contextlib.asynccontextmanager
async def compute_agent(
    apiserver: ClusterAccess,
    driver: ComputeDriver,
    *,
    host: str,
    images: ImageFetcher | None = None,
    **settings: Any,
) -> AsyncIterator[RunningAgent]:
    """Run a compute service for `host` on `driver` until the block ends (driver left open)."""
    async with KubeClient(load_config(apiserver.kubeconfig)) as client:
        fetcher = images or PlaceholderImages(Path(getattr(driver, "state_dir", "/tmp")) / "img")
        options = {"resync_interval": 3600.0, "recheck_missing": 0.5} | settings
        service = ComputeService(
            client, driver, fetcher, ComputeSettings(host=host, domain_type="qemu", **options)
        )
        task = asyncio.create_task(service.run())
        try:
            await asyncio.wait_for(service.synced.wait(), 20)
            yield RunningAgent(client, driver, service, task, host)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class CountingFakeDriver(FakeComputeDriver):
    """The fake driver, counting the calls tests reason about."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.calls: dict[str, int] = {}

    def _count(self, what: str) -> None:
        self.calls[what] = self.calls.get(what, 0) + 1

    def spawn(self, spec: Any) -> Any:
        self._count("spawn")
        return super().spawn(spec)

    def reboot(self, uid: str, *, hard: bool = False) -> None:
        self._count("reboot")
        super().reboot(uid, hard=hard)

    def power_on(self, uid: str) -> None:
        self._count("power_on")
        super().power_on(uid)
