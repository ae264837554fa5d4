"""Watches never stall (issue 13, item 5), on the real apiserver through a TCP proxy that
can freeze: a half-open connection is noticed within the watch's idle timeout and what was
created meanwhile is delivered; a resync catches up without waiting for that; a rotated
ServiceAccount token file is read again once the old token is revoked.

A garbled watch line is covered in tests/unit/test_kube_watch.py: the proxy forwards TLS,
where injected bytes break the session rather than the JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from kubenova.devcluster import ClusterAccess
from kubenova.errors import ApiError
from kubenova.kube.client import KubeClient
from kubenova.kube.config import ConnectionConfig, from_kubeconfig
from kubenova.kube.meta import Body, name_of
from kubenova.kube.paths import ResourceKind
from kubenova.kube.watch import ListWatch
from tests.support.namespaces import finish_terminating
from tests.support.tcp_proxy import FreezableProxy

pytestmark = pytest.mark.apiserver

CONFIGMAPS = ResourceKind("", "v1", "configmaps", True, "ConfigMap")
IDLE = 3.0  # the watches' idle timeout here (90 s in production)


@pytest.fixture
def namespace(apiserver: ClusterAccess) -> Iterator[str]:
    name = f"stall-{uuid.uuid4().hex[:8]}"
    apiserver.kubectl("create", "namespace", name)
    yield name
    apiserver.kubectl("delete", "namespace", name, "--wait=false")
    finish_terminating(apiserver, name)


async def until(probe: Callable[[], bool], timeout: float, what: str) -> float:
    """Seconds until `probe()` holds; fails after `timeout`."""
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout}s: {what}")
        await asyncio.sleep(0.05)
    return time.monotonic() - start


class Watching:
    """A ListWatch of this test's ConfigMaps, recording which names it reconciled."""

    def __init__(self, client: KubeClient, selector: str) -> None:
        self.seen: set[str] = set()
        self.watch = ListWatch(client, CONFIGMAPS, self._handle, label_selector=selector)

    async def _handle(self, _key: str, body: Body | None) -> None:
        if body is not None:
            self.seen.add(name_of(body))


@asynccontextmanager
async def watching(client: KubeClient, selector: str) -> AsyncIterator[Watching]:
    state = Watching(client, selector)
    task = asyncio.create_task(state.watch.run())
    try:
        await asyncio.wait_for(state.watch.synced.wait(), 30)
        yield state
        assert not task.done(), "the ListWatch stopped"
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def proxied(apiserver: ClusterAccess) -> AsyncIterator[FreezableProxy]:
    target = urlsplit(apiserver.url)
    assert target.hostname is not None
    assert target.port is not None
    proxy = FreezableProxy(target.hostname, target.port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.stop()


def through(config: ConnectionConfig, proxy: FreezableProxy) -> ConnectionConfig:
    return replace(config, server=f"https://127.0.0.1:{proxy.port}")


async def create(apiserver: ClusterAccess, namespace: str, name: str, selector: str) -> None:
    key, value = selector.split("=")
    body = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace, "labels": {key: value}},
    }
    await asyncio.to_thread(apiserver.kubectl, "create", "-f", "-", input=json.dumps(body))


def test_a_frozen_watch_is_noticed_and_what_was_created_meanwhile_delivered(
    apiserver: ClusterAccess, namespace: str
) -> None:
    selector = f"stall={namespace}"

    async def scenario() -> float:
        async with proxied(apiserver) as proxy:
            config = through(from_kubeconfig(apiserver.kubeconfig), proxy)
            async with (
                KubeClient(config, watch_idle_timeout=IDLE) as client,
                watching(client, selector) as state,
            ):
                await create(apiserver, namespace, "before", selector)
                await until(lambda: "before" in state.seen, 10, "the watch delivers")
                assert proxy.freeze() >= 1
                await create(apiserver, namespace, "during", selector)
                await asyncio.sleep(IDLE / 2)
                assert "during" not in state.seen, "the freeze did not hold the watch back"
                return await until(lambda: "during" in state.seen, IDLE + 15, "resumed watch")

    waited = asyncio.run(scenario())
    assert waited <= IDLE + 5  # the idle timeout, the pause before resuming, a relist at most


def test_a_resync_queues_what_a_stalled_watch_missed(
    apiserver: ClusterAccess, namespace: str
) -> None:
    selector = f"stall={namespace}"

    async def scenario() -> None:
        async with proxied(apiserver) as proxy:
            config = through(from_kubeconfig(apiserver.kubeconfig), proxy)
            # An idle timeout longer than the test: only the resync can find the new object.
            async with (
                KubeClient(config, watch_idle_timeout=3600) as client,
                watching(client, selector) as state,
            ):
                await create(apiserver, namespace, "before", selector)
                await until(lambda: "before" in state.seen, 10, "the watch delivers")
                assert proxy.freeze() >= 1
                await create(apiserver, namespace, "during", selector)
                await asyncio.sleep(1)
                assert "during" not in state.seen
                await state.watch.relist()  # what a resync does first
                await until(lambda: "during" in state.seen, 5, "the resync queues it")

    asyncio.run(scenario())


def bound_token(apiserver: ClusterAccess, namespace: str, account: str, secret: str) -> str:
    apiserver.kubectl("create", "secret", "generic", secret, "-n", namespace)
    return apiserver.kubectl(
        "create",
        "token",
        account,
        "-n",
        namespace,
        "--duration=1h",
        "--bound-object-kind=Secret",
        f"--bound-object-name={secret}",
    ).stdout.strip()


def rotate(token_file: Path, token: str) -> None:
    """Replace the file at once, as the kubelet swaps a projected volume's symlink."""
    staged = token_file.with_suffix(".new")
    staged.write_text(token)
    os.replace(staged, token_file)


def test_a_rotated_token_file_is_read_again_after_the_old_token_is_revoked(
    apiserver: ClusterAccess, namespace: str, tmp_path: Path
) -> None:
    selector = f"stall={namespace}"
    account, role = "watcher", f"watch-configmaps-{namespace}"
    apiserver.kubectl("create", "serviceaccount", account, "-n", namespace)
    apiserver.kubectl(
        "create", "clusterrole", role, "--verb=get,list,watch", "--resource=configmaps"
    )
    apiserver.kubectl(
        "create", "clusterrolebinding", role, f"--clusterrole={role}",
        f"--serviceaccount={namespace}:{account}",
    )  # fmt: skip
    old = bound_token(apiserver, namespace, account, "token-one")
    new = bound_token(apiserver, namespace, account, "token-two")
    token_file = tmp_path / "token"
    rotate(token_file, old)
    admin = from_kubeconfig(apiserver.kubeconfig)

    async def refused(token: str) -> bool:
        async with KubeClient(replace(admin, token=token)) as client:
            try:
                await client.list(CONFIGMAPS, label_selector=selector)
            except ApiError as exc:
                return exc.status == 401
            return False

    async def scenario() -> None:
        async with proxied(apiserver) as proxy:
            config = replace(through(admin, proxy), token=None, token_file=str(token_file))
            async with (
                KubeClient(config, watch_idle_timeout=IDLE) as client,
                watching(client, selector) as state,
            ):
                await create(apiserver, namespace, "before", selector)
                await until(lambda: "before" in state.seen, 10, "the watch delivers")
                rotate(token_file, new)
                await asyncio.to_thread(
                    apiserver.kubectl, "delete", "secret", "token-one", "-n", namespace
                )
                # The apiserver caches a token's verdict for 10 s.
                deadline = time.monotonic() + 30
                while not await refused(old):
                    assert time.monotonic() < deadline, "the old token was never revoked"
                    await asyncio.sleep(1)
                await client.list(CONFIGMAPS, label_selector=selector)  # the new token
                # The open watch was authenticated once, at its start: make it reconnect.
                proxy.freeze()
                await create(apiserver, namespace, "after", selector)
                await until(lambda: "after" in state.seen, IDLE + 15, "watch with new token")

    try:
        asyncio.run(scenario())
    finally:
        apiserver.kubectl("delete", "clusterrolebinding,clusterrole", role, check=False)
