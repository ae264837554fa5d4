"""Extension points of the Instance reconciler for the domains that own an Instance's
attachments (networks: fixed IPs, MACs and floating IPs; volumes: attachments).

A domain appends a hook to `runtime.instances.hooks` in its startup handler. Hooks are
called in order, level-triggered and idempotent:

- `claim_step(body)` while the placement request is built, before anything is claimed:
  resolve from in-memory state what the Instance takes along with its claim and return
  it as an `inventory.ClaimStep` (or None), which runs inside the claim's transaction
  and whose result lands in the placement's status write (e.g. `{"addresses": [...]}`);
  raise a `kubenova.errors.UserError` (or `NotFoundError`) to refuse — here, or from the
  step, which rolls the whole claim back: nothing is claimed, and the message is shown;
- `on_placed(body, host)` once the claim and its steps are committed (cheap: mark what
  changed for the domain's own reconcilers);
- `on_scheduled(body)` on every later event of a placed Instance (spec changes such as an
  added volume); must be cheap when nothing changed;
- `on_release(uid)` once the Instance is gone or being finalised: free what it held.
"""

from __future__ import annotations

from typing import Protocol

from kubenova.kube.meta import Body
from kubenova.operator.inventory import ClaimStep


class InstanceHook(Protocol):
    def claim_step(self, body: Body) -> ClaimStep | None: ...

    def on_placed(self, body: Body, host: str) -> None: ...

    async def on_scheduled(self, body: Body) -> None: ...

    async def on_release(self, uid: str) -> None: ...
