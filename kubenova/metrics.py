"""Prometheus metrics and the health endpoints both kubenova processes serve on one port.

GET /metrics  Prometheus text format
GET /healthz  200 while the event loop answers (liveness)
GET /readyz   200 once the process has synced with the API server (readiness)
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

RECONCILES = Counter(
    "kubenova_reconcile_total",
    "Reconciles of a resource kind, by outcome (ok, retry, error).",
    ["component", "kind", "result"],
)
RECONCILE_SECONDS = Histogram(
    "kubenova_reconcile_duration_seconds",
    "Time one reconcile of a resource took.",
    ["component", "kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
SCHEDULER_DECISIONS = Counter(
    "kubenova_scheduler_decisions_total",
    "Scheduling outcomes: placed, or no_valid_host.",
    ["result"],
)
PLACEMENTS = Counter("kubenova_placements_total", "Durable claims made by the scheduler.")
# A host, whether its agent heart-beats, its capacity and what is claimed on it, as
# (resource class, amount) pairs.
HostSample = tuple[str, bool, Iterable[tuple[str, int]], Iterable[tuple[str, int]]]


class HostGauges(Collector):
    """kubenova_host_capacity, _allocated and _ready, read from `source` when scraped.

    As gauge children (seven per host) they cost a drain onto 1,000 hosts a fifth of a
    second of its event loop at the first lease check (prometheus_client builds each child)
    and 7,000 sets at every check after it; a scrape reads each value once.
    """

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[HostSample]] = lambda: ()

    def describe(self) -> Iterator[Metric]:
        return iter(self._families())

    def collect(self) -> Iterator[Metric]:
        capacity, allocated, ready = self._families()
        for host, up, total, used in self.source():
            ready.add_metric([host], 1.0 if up else 0.0)
            for resource, amount in total:
                capacity.add_metric([host, resource], amount)
            for resource, amount in used:
                allocated.add_metric([host, resource], amount)
        return iter((capacity, allocated, ready))

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (
            GaugeMetricFamily(
                "kubenova_host_capacity",
                "Physical capacity of a host.",
                labels=["host", "resource"],
            ),
            GaugeMetricFamily(
                "kubenova_host_allocated",
                "Amount claimed on a host by placements.",
                labels=["host", "resource"],
            ),
            GaugeMetricFamily(
                "kubenova_host_ready", "1 while the host's agent heart-beats.", labels=["host"]
            ),
        )


HOST_GAUGES = HostGauges()
REGISTRY.register(HOST_GAUGES)
API_WRITES = Counter(
    "kubenova_api_writes_total", "Writes made to the API server.", ["component", "verb", "resource"]
)
DRIVER_SECONDS = Histogram(
    "kubenova_agent_driver_call_seconds",
    "Latency of one call into an agent driver (libvirt, tgt, network, images).",
    ["service", "call"],
    buckets=(0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120),
)


T = TypeVar("T")


class _TimedProxy:
    """Forwards every method call to the wrapped object, timing it into DRIVER_SECONDS."""

    def __init__(self, target: object, service: str) -> None:
        self._target = target
        self._service = service

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._target, name)
        if not callable(attribute) or name.startswith("_"):
            return attribute
        histogram = DRIVER_SECONDS.labels(self._service, name)

        @functools.wraps(attribute)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return attribute(*args, **kwargs)
            finally:
                histogram.observe(time.perf_counter() - started)

        return timed


def timed_driver(driver: T, service: str) -> T:
    """`driver` with every public method call timed (kubenova_agent_driver_call_seconds)."""
    return cast(T, _TimedProxy(driver, service))


class HealthServer:
    """aiohttp app serving /metrics, /healthz and /readyz."""

    def __init__(self, host: str, port: int, ready: Callable[[], bool]) -> None:
        self.host = host
        self.port = port
        self._ready = ready
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port).start()
        log.info("metrics and probes on http://%s:%d/metrics", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _metrics(self, _: web.Request) -> web.Response:
        body = generate_latest(REGISTRY)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def _readyz(self, _: web.Request) -> web.Response:
        if self._ready():
            return web.Response(text="ok")
        return web.Response(status=503, text="not ready")
