"""One active brain: which operator replica may act, decided by a Lease in its namespace.

Every replica runs kopf's watches (its caches stay warm) and serves the admission webhook,
but only the holder of `kubenova-operator-leader` runs the work queues, the host monitor's
lease checks, the audits and every other loop that writes. The others stand by and write
nothing. Two guards make that hold even for a leader that was paused (SIGSTOP, a frozen
VM) while another took over: the API client it writes with and the inventory engine both
refuse a write unless the lease was renewed less than a lease duration ago by our own
monotonic clock (`LeaderElector.check`), so a resumed replica's first write fails before
it reaches the apiserver or the database.

A replica that loses the lead exits (status 1) as kube-controller-manager does, and its
pod restarts as a fresh candidate: nothing half-stopped keeps acting, and no loop has to
know how to give its work back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from sqlalchemy import Engine, event

from kubenova.kube import KubeClient
from kubenova.kube.leader import LeaderElector
from kubenova.kube.objects import ensure_namespace

log = logging.getLogger(__name__)

LEADER_LEASE = "kubenova-operator-leader"

OnLeading = Callable[[], Coroutine[Any, Any, None]]


def identity() -> str:
    """`<pod or host name>_<pid>`: unique among replicas, and tells which process held it."""
    return f"{_host()}_{os.getpid()}"


def _host() -> str:
    # In a pod the hostname is the pod's name; POD_NAME (the downward API) wins if set.
    return os.environ.get("POD_NAME") or socket.gethostname()


def holder_dead(holder: str) -> bool:
    """Is `holder` a process of this host that no longer exists (killed, then restarted)?

    Then its lease need not be waited out: a pod whose operator container restarted takes
    its lead back at once. A holder elsewhere, or alive here (paused), is waited for.
    """
    host, _, pid = holder.rpartition("_")
    if host != _host() or not pid.isdigit() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def guard_engine(engine: Engine, check: Callable[[], None]) -> None:
    """Make `engine` refuse INSERT, UPDATE and DELETE while `check` raises."""

    @event.listens_for(engine, "before_cursor_execute")
    def _refuse_writes(  # noqa: PLR0917 - SQLAlchemy's event signature
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip()[:6].upper() in {"INSERT", "UPDATE", "DELETE"}:
            check()


class Leadership:
    """The election and what starts once it is won."""

    def __init__(self, elector: LeaderElector, client: KubeClient) -> None:
        self.elector = elector
        self.client = client  # the unguarded one: a candidate may need the namespace made
        self.leading = False
        self._on_leading: list[OnLeading] = []
        self._started = False
        self._late: set[asyncio.Task[None]] = set()

    def when_leading(self, start: OnLeading) -> None:
        """Run `start` once this replica leads (at once if it already does)."""
        if self._started:
            task = asyncio.create_task(start())
            self._late.add(task)
            task.add_done_callback(self._late.discard)
        else:
            self._on_leading.append(start)

    async def lead(self, on_lost: Callable[[], None]) -> None:
        """Wait to be elected, start everything registered, renew; `on_lost` when lost."""
        log.info(
            "standing by for leader lease %s/%s as %s",
            self.elector.namespace,
            self.elector.name,
            self.elector.identity,
        )
        try:
            # A bare cluster may lack it (the chart installs into it).
            await ensure_namespace(self.client, self.elector.namespace)
        except Exception as exc:  # the election's own retries will say more
            log.warning("namespace %s of the leader lease: %s", self.elector.namespace, exc)
        await self.elector.acquire()
        self.leading = True
        log.info("leading as %s: starting the work queues and loops", self.elector.identity)
        # Those registered while we start (later start-up handlers) run too, in order.
        try:
            started = 0
            while started < len(self._on_leading):
                await self._on_leading[started]()
                started += 1
            self._started = True
            await self.elector.keep()
            log.error("lost the leader lease %s/%s", self.elector.namespace, self.elector.name)
        except Exception:
            # Half started is worse than not at all: let another replica (or our restart) lead.
            log.exception("starting as the leader failed")
        on_lost()
