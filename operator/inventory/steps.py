"""What other domains take with an Instance's claim, inside the claim's own transaction.

A step (fixed IPs and MACs, floating IPs, volume attachments) is resolved from in-memory
state before the claim, then `take`n in the claim's transaction once the host is known:
either everything is taken or nothing is. A step refuses by raising a
`kubenova.errors.UserError` (the claim is rolled back with it) and is idempotent: run
again for a consumer that already holds what it takes, it returns the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import Connection

from kubenova.operator.resources import Consumer


class ClaimStep(Protocol):
    def take(self, connection: Connection, consumer: Consumer, host: str) -> Mapping[str, Any]:
        """Take it for `consumer` on `host`; the status fields to publish with the placement."""
        ...
