"""Extension points of the Instance reconciler for the domains that own an Instance's
attachments (networks: fixed IPs and MACs; volumes: attachments).

A domain appends a hook to `runtime.instances.hooks` in its startup handler. Hooks are
called in order, level-triggered and idempotent:

- `on_schedule(body, host)` right after the Instance's resources were claimed on `host`:
  allocate what the Instance needs there and return status fields to publish together with
  the placement (e.g. `{"addresses": [...]}`); raise a `kubenova.errors.UserError` (or
  `NotFoundError`) to refuse — the claim is then released and the message shown;
- `on_scheduled(body)` on every later event of a placed Instance (spec changes such as an
  added volume); must be cheap when nothing changed;
- `on_release(uid)` once the Instance is gone or being finalised: free what it held.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubenova.kube.meta import Body


class InstanceHook(Protocol):
    async def on_schedule(self, body: Body, host: str) -> dict[str, Any]: ...

    async def on_scheduled(self, body: Body) -> None: ...

    async def on_release(self, uid: str) -> None: ...
