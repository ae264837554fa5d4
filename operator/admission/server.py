"""kopf's webhook server, publishing our ValidatingWebhookConfiguration whenever it (re)starts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import kopf
from kopf._cogs.structs import reviews

Publish = Callable[[dict[str, Any]], Awaitable[None]]


class PublishingWebhookServer(kopf.WebhookServer):
    """A `kopf.WebhookServer` that hands each client config (URL + CA bundle) to `publish`.

    kopf yields a new client config when the server starts listening and after its
    certificate files change; each is published before kopf sees it.
    """

    def __init__(self, publish: Publish, **options: Any) -> None:
        super().__init__(**options)
        self._publish = publish

    async def __call__(self, fn: reviews.WebhookFn) -> AsyncIterator[reviews.WebhookClientConfig]:
        async for client_config in super().__call__(fn):
            await self._publish(dict(client_config))
            yield client_config
