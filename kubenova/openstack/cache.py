"""The watch cache the API reads from: one ListWatch per kind, indexed by UID and namespace.

Reads never LIST per request (1,000 servers answer from memory). What this process wrote
itself is put in at once from the apiserver's answer (`remember`), so a client that creates
a server and asks for it right away finds it before the watch event arrives. The cache is
read with the admin's eyes; every answer is filtered to the token's namespace before it
leaves (`in_namespace`), and writes go to the apiserver as the user.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from kubenova.api.v1alpha1 import (
    Flavor,
    Image,
    Instance,
    Network,
    Project,
    Resource,
    ServerGroup,
    Volume,
)
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, key_of, metadata_of, resource_version, uid_of
from kubenova.kube.watch import ListWatch

KINDS: tuple[type[Resource], ...] = (
    Instance,
    Volume,
    Network,
    Flavor,
    Image,
    ServerGroup,
    Project,
)


def namespace_of(body: Body) -> str:
    """The object's namespace; "" for a cluster-scoped one."""
    return str(metadata_of(body).get("namespace") or "")


class KindCache:
    """The newest body of every object of one kind, by UID and by namespace."""

    def __init__(self, client: KubeClient, model: type[Resource]) -> None:
        self.model = model
        self.by_uid: dict[str, Body] = {}
        self.by_key: dict[str, str] = {}  # namespace/name -> uid
        self.by_namespace: dict[str, dict[str, Body]] = {}
        self.watch = ListWatch(
            client, kubenova_kind(model), self._handle, workers=1, name=f"osapi-{model.crd.plural}"
        )

    async def _handle(self, key: str, body: Body | None) -> None:
        if body is None:
            self._drop(key)
        else:
            self.remember(body)

    def remember(self, body: Body) -> None:
        """Take `body` unless a newer version of it is known already."""
        key, uid = key_of(body), uid_of(body)
        known = self.by_uid.get(uid)
        if known is not None:
            old, new = resource_version(known), resource_version(body)
            if old is not None and new is not None and new < old:
                return
        previous = self.by_key.get(key)
        if previous is not None and previous != uid:
            self._drop(key)  # the name was deleted and made again
        self.by_uid[uid] = body
        self.by_key[key] = uid
        self.by_namespace.setdefault(namespace_of(body), {})[uid] = body

    def forget(self, body: Body) -> None:
        self._drop(key_of(body))

    def _drop(self, key: str) -> None:
        uid = self.by_key.pop(key, None)
        if uid is None:
            return
        body = self.by_uid.pop(uid, None)
        if body is not None:
            self.by_namespace.get(namespace_of(body), {}).pop(uid, None)

    def get(self, uid: str, namespace: str | None = None) -> Body | None:
        """The object with `uid` (in `namespace`, when given: others' objects do not exist)."""
        body = self.by_uid.get(uid)
        if body is None or (namespace is not None and namespace_of(body) != namespace):
            return None
        return body

    def named(self, name: str, namespace: str = "") -> Body | None:
        uid = self.by_key.get(f"{namespace}/{name}" if namespace else name)
        return self.by_uid.get(uid) if uid else None

    def in_namespace(self, namespace: str) -> Iterable[Body]:
        return self.by_namespace.get(namespace, {}).values()

    def all(self) -> Iterable[Body]:
        return self.by_uid.values()


class WatchCache:
    """A KindCache for each kind the API shows; `run()` until cancelled."""

    def __init__(self, client: KubeClient) -> None:
        self.kinds = {model: KindCache(client, model) for model in KINDS}

    def __getitem__(self, model: type[Resource]) -> KindCache:
        return self.kinds[model]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for cache in self.kinds.values():
                tasks.create_task(cache.watch.run(), name=f"osapi-cache-{cache.model.crd.plural}")

    async def synced(self) -> None:
        for cache in self.kinds.values():
            await cache.watch.synced.wait()
