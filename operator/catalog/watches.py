"""The catalog's watches: Flavors, Images and ServerGroups, one list+watch each, filed as
they are seen.

Informers (as for Hosts and Instances), not kopf: their lists are in as soon as the runtime
starts, which a placement waits for, and are read page by page (a kind's cold watch cache
answers an unpaged list with 429 and a retry after a second; kopf waits that second). They
run on every replica from start-up, leading or not, as kopf's handlers did.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from kubenova.api.v1alpha1 import Flavor, Image, Network, Resource, ServerGroup, Volume
from kubenova.errors import KubenovaError
from kubenova.kube import KubeClient, kubenova_kind
from kubenova.kube.meta import Body, key_of, slim
from kubenova.kube.paths import ResourceKind
from kubenova.kube.watch import ListWatch, list_pages
from kubenova.operator.catalog.store import Catalog
from kubenova.workqueue import Handler

log = logging.getLogger(__name__)

KINDS: tuple[type[Resource], ...] = (Flavor, Image, ServerGroup)
# What other domains' kopf handlers file into the catalog, which a placement reads too.
FILED_BY_DOMAINS: tuple[type[Resource], ...] = (Network, Volume)
# Seconds between relists (deletions a watch restart missed).
RESYNC_INTERVAL = 300.0


class CatalogWatches:
    """Flavors, Images and ServerGroups into `catalog`; `await run()` until cancelled."""

    def __init__(self, client: KubeClient, catalog: Catalog) -> None:
        self.catalog = catalog
        self.client = client
        # Lists of FILED_BY_DOMAINS read at start-up (by path), for the first `complete()`.
        self.prefetched: dict[str, Future[list[Body]]] = {}
        self.watches = [
            ListWatch(
                client,
                kubenova_kind(model),
                self._filer(model.crd.kind),
                workers=1,
                name=f"catalog-{model.crd.plural}",
                component="operator",
                transform=slim,
            )
            for model in KINDS
        ]

    async def synced(self) -> None:
        """Wait until every kind's first list is filed."""
        for watch in self.watches:
            await watch.synced.wait()

    async def complete(self) -> None:
        """Wait until the catalog holds every Flavor, Image, ServerGroup, Network and
        Volume that exists now: an Instance reconciled before its Flavor or Network arrived
        would be told it does not exist (a wasted write, a false Event). Networks and
        Volumes, which their kopf domains file, are listed (nothing filed: kopf's newer
        events stay the truth) and waited for."""
        try:
            listed = await asyncio.gather(
                *(self._keys(kubenova_kind(filed)) for filed in FILED_BY_DOMAINS)
            )
        except (KubenovaError, OSError) as exc:
            log.warning("listing the catalog before placing failed: %s", exc)
            listed = []
        await self.synced()
        await self.catalog.filed(key for keys in listed for key in keys)

    async def _keys(self, kind: ResourceKind) -> list[tuple[str, str]]:
        pages: list[Body] | None = None
        if (prefetched := self.prefetched.pop(kind.path(), None)) is not None:
            try:
                pages = await asyncio.wrap_future(prefetched)
            except Exception as exc:
                log.info("the prefetched list of %s failed (%s)", kind.plural, exc)
        if pages is None:
            pages = [page async for page in list_pages(self.client, kind)]
        return [(kind.kind, key_of(item)) for page in pages for item in page.get("items") or []]

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for watch in self.watches:
                tasks.create_task(self._follow(watch), name=watch.name)

    def _filer(self, kind: str) -> Handler[str]:
        async def file(key: str, body: Body | None) -> float | None:
            self.catalog.put(kind, key, body)
            return None

        return file

    async def _filed(self, watch: ListWatch, bodies: list[Body]) -> None:
        # Filed with the list, before `synced` is set: the queue's reconciles of these
        # bodies only file them again.
        kind = watch.kind.kind
        for body in bodies:
            self.catalog.put(kind, key_of(body), body)

    async def _follow(self, watch: ListWatch) -> None:
        while True:
            try:
                await watch.run(
                    lambda bodies: self._filed(watch, bodies),
                    resync=watch.relist,
                    resync_interval=RESYNC_INTERVAL,
                )
            except Exception:
                # kopf retried its watches for ever; so do we.
                log.exception("the %s watch failed; starting it again in 1 s", watch.name)
                await asyncio.sleep(1)
