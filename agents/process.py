"""One host agent process: registration + heartbeat + the services this host runs.

Everything is built from `AgentSettings`; `await Agent(settings).run()` runs until
cancelled. The agent talks only to the API server and its own hypervisor: it holds no
database credentials. Several agents with different host names and state directories can
run side by side on one machine (tests, benchmarks).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path

from kubenova.agents.compute.attach_service import AttacherService, AttacherServiceSettings
from kubenova.agents.compute.driver import ComputeDriver
from kubenova.agents.compute.migration import MigrationTuning, published_endpoint
from kubenova.agents.compute.service import ComputeService, ComputeSettings
from kubenova.agents.host import Capacity, HostRegistration, capacity_from_libvirt
from kubenova.agents.images import (
    ImageFetcher,
    ImageService,
    PlaceholderImages,
    default_store_from_env,
    image_cache_dir,
)
from kubenova.agents.network.assembly import NetworkFlags, make_network_service, options_for
from kubenova.agents.network.service import NetworkService
from kubenova.agents.volume.assembly import VolumeFlags, make_volume_service
from kubenova.kube import KubeClient, load_config
from kubenova.metrics import HealthServer, timed_driver

log = logging.getLogger(__name__)

SERVICES = ("compute", "volume", "network")
# Services whose code is in this agent; the others are registered but not run yet.
IMPLEMENTED = frozenset({"compute", "network", "volume"})


@dataclass(frozen=True)
class AgentSettings:
    """The agent's configuration (what `kubenova-agent` options set)."""

    host_name: str
    state_dir: Path
    services: tuple[str, ...] = ("compute",)
    libvirt_uri: str = "qemu:///system"
    kubeconfig: Path | None = None
    availability_zone: str = "nova"
    domain_type: str = "auto"
    hypervisor: str = "qemu"  # or xen-hvm / xen-pv (agents/compute/xen.py)
    underlay_ip: str | None = None
    workers: int = 4
    capacity: Capacity | None = None  # None: from libvirt's node info
    resync_interval: float = 60.0
    heartbeat_interval: float = 10.0
    migration: MigrationTuning = field(default_factory=MigrationTuning)
    metrics_host: str = "0.0.0.0"
    metrics_port: int | None = None  # /metrics, /healthz, /readyz when set
    network: NetworkFlags = field(default_factory=NetworkFlags)
    volume: VolumeFlags = field(default_factory=VolumeFlags)

    @property
    def fake(self) -> bool:
        """A `test:` URI selects the fake driver (libvirt's test driver, no QEMU)."""
        return self.libvirt_uri.startswith("test:")

    def __post_init__(self) -> None:
        unknown = set(self.services) - set(SERVICES)
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(sorted(unknown))}: choose from {SERVICES}"
            )


def make_driver(settings: AgentSettings) -> ComputeDriver:
    """The fake driver for `test:` URIs, the libvirt/QEMU driver otherwise."""
    if settings.fake:
        from kubenova.agents.compute.fake import FakeComputeDriver  # noqa: PLC0415

        # Always a private node file: `test:///default` is shared by the whole process.
        return FakeComputeDriver(settings.state_dir / "fake-libvirt")
    from kubenova.agents.compute.libvirt_qemu import (  # noqa: PLC0415
        LibvirtDriver,
        LibvirtSettings,
    )

    if settings.hypervisor.startswith("xen"):
        from kubenova.agents.compute.xen import XenDriver  # noqa: PLC0415
        from kubenova.agents.compute.xen_xml import XenMode  # noqa: PLC0415

        xen = LibvirtSettings(
            uri=settings.libvirt_uri, instances_dir=settings.state_dir / "instances"
        )
        return XenDriver(xen, XenMode(settings.hypervisor.removeprefix("xen-")))
    return LibvirtDriver(
        LibvirtSettings(
            uri=settings.libvirt_uri,
            instances_dir=settings.state_dir / "instances",
            domain_type=settings.domain_type,
        )
    )


def make_image_fetcher(settings: AgentSettings, client: KubeClient) -> ImageFetcher:
    """The S3 image service into `<state_dir>/images`; placeholders for the fake driver.

    The default object store comes from KUBENOVA_S3_ENDPOINT/_ACCESS_KEY/_SECRET_KEY; an
    Image naming a credentials Secret uses that instead.
    """
    if settings.fake:
        return PlaceholderImages(settings.state_dir / "images")
    from kubenova.agents.images.s3 import S3ImageStore  # noqa: PLC0415 - minio only where needed

    default = default_store_from_env()
    store = S3ImageStore(image_cache_dir(settings.state_dir), default)
    return ImageService(client, store, default)


def domain_type_of(driver: ComputeDriver) -> str | None:
    """The domain type a libvirt-backed driver resolved (kvm or qemu)."""
    domain_settings = getattr(driver, "settings", None)
    domain_type = getattr(domain_settings, "domain_type", None)
    return None if domain_type is None else str(domain_type)


class Agent:
    """The whole agent; construct, then `await run()`."""

    def __init__(self, settings: AgentSettings) -> None:
        self.settings = settings
        self.driver: ComputeDriver | None = None
        self.compute: ComputeService | None = None
        self.network: NetworkService | None = None
        self.registration: HostRegistration | None = None
        self.registered = False

    async def run(self) -> None:
        settings = self.settings
        settings.state_dir.mkdir(parents=True, exist_ok=True)
        for name in sorted(set(settings.services) - IMPLEMENTED):
            log.warning(
                "service %s is registered for %s but not run by this agent yet",
                name,
                settings.host_name,
            )
        config = load_config(settings.kubeconfig)
        async with KubeClient(config, user_agent=f"kubenova-agent/{settings.host_name}") as client:
            driver = timed_driver(await asyncio.to_thread(make_driver, settings), "compute")
            self.driver = driver
            health = None
            if settings.metrics_port is not None:
                health = HealthServer(
                    settings.metrics_host, settings.metrics_port, lambda: self.registered
                )
                await health.start()
            try:
                capacity = settings.capacity
                if capacity is None:
                    capacity = await asyncio.to_thread(self._capacity)
                registration = HostRegistration(
                    client,
                    settings.host_name,
                    capacity=capacity,
                    zone=settings.availability_zone,
                    services=settings.services,
                    domain_type=domain_type_of(driver),
                    underlay_ip=settings.underlay_ip,
                    migration=published_endpoint(
                        settings.libvirt_uri, settings.underlay_ip, settings.state_dir / "instances"
                    )
                    if "compute" in settings.services
                    else None,
                    heartbeat_interval=settings.heartbeat_interval,
                )
                self.registration = registration
                await registration.register()
                async with asyncio.TaskGroup() as tasks:
                    if "compute" in settings.services:
                        self.compute = ComputeService(
                            client,
                            driver,
                            make_image_fetcher(settings, client),
                            ComputeSettings(
                                host=settings.host_name,
                                domain_type=domain_type_of(driver),
                                workers=settings.workers,
                                resync_interval=settings.resync_interval,
                                migration=settings.migration,
                                wire_nics="network" in settings.services
                                and settings.network.netns is None,
                            ),
                        )
                        tasks.create_task(self.compute.run(), name="compute")
                        attacher = AttacherService(
                            client,
                            driver,
                            AttacherServiceSettings(
                                host=settings.host_name,
                                workers=settings.workers,
                                resync_interval=settings.resync_interval,
                                storage_interface=settings.volume.storage_interface,
                            ),
                        )
                        tasks.create_task(attacher.run(), name="volume-attacher")
                    if "network" in settings.services:
                        self.network = make_network_service(
                            client,
                            options_for(
                                settings.host_name,
                                settings.state_dir,
                                settings.underlay_ip,
                                settings.network,
                                settings.resync_interval,
                            ),
                        )
                        tasks.create_task(self.network.run(), name="network")
                    if "volume" in settings.services:
                        volumes = make_volume_service(
                            client,
                            settings.host_name,
                            settings.state_dir,
                            settings.underlay_ip,
                            settings.volume,
                            images=None
                            if settings.volume.fake_exports
                            else make_image_fetcher(settings, client),
                            workers=settings.workers,
                            resync_interval=settings.resync_interval,
                        )
                        tasks.create_task(volumes.run(), name="volume")
                    await self._heart_beat(tasks, registration)
            finally:
                if health is not None:
                    await health.stop()
                await asyncio.to_thread(driver.close)

    async def _heart_beat(self, tasks: asyncio.TaskGroup, registration: HostRegistration) -> None:
        """Report the host Ready only once no stale guest runs here.

        The first heartbeat makes the operator call the host Ready. A host that comes back
        after being fenced may still have domains of Instances evacuated meanwhile (now
        placed elsewhere): the compute service's first list and orphan sweep destroy them,
        and their files, NICs and volume sessions, before that first heartbeat, so this
        host never runs a second copy of a guest while it reports Ready.
        """
        after_gap = None
        if self.compute is not None:
            await self.compute.synced.wait()
            after_gap = self.compute.resync  # the same after a pause or a cut-off
        await registration.renew()
        log.info("host %s: first heartbeat sent: reporting alive", self.settings.host_name)
        self.registered = True
        tasks.create_task(registration.run_heartbeat(after_gap), name="heartbeat")

    def _capacity(self) -> Capacity:
        # For `test:` URIs this is libvirt's fixed test node (16 CPUs, 3 GiB): pass an
        # explicit capacity when fake hosts must hold more.
        uri = "test:///default" if self.settings.fake else self.settings.libvirt_uri
        return capacity_from_libvirt(uri, self.settings.state_dir)
