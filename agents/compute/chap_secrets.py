"""The iSCSI CHAP secrets a compute host keeps in its libvirtd live as long as an attachment.

A host defines a volume's secret when it opens the volume: the attacher before it plugs the
volume in, a live migration's target before the guest arrives. Whatever ends the
attachment here (an unplug, the guest deleted, the guest migrated away, a migration rolled
back on its target, an agent that died in between), the secret must not stay behind: it
holds a tenant's password. So the lifetime is level-triggered, not tied to the event: a
sweep lists this libvirtd's secrets of ours (usage `kubenova-volume-<volume uid>`, the
description naming the Volume) and undefines each one that no domain here names in its
disks and whose Volume no longer lists this host in `status.attachments` (the operator's
allowance, which also lists a migration's target while the guest moves). It runs at start
(an agent restart cleans what its predecessor left), every 5 s (every second while a secret
no domain names is kept), and at once when the attacher unplugs or forgets a guest. A
secret the driver (re)defined after a sweep started is left to the next one, which reads
the Volume again: a sweep never takes a secret from an attach or a migration's target
racing with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time

from kubenova.agents.compute.driver import ComputeDriver
from kubenova.api.v1alpha1 import Volume
from kubenova.errors import KubenovaError
from kubenova.kube import ApiError, KubeClient, NotFound, kubenova_kind
from kubenova.kube.meta import uid_of

log = logging.getLogger(__name__)

VOLUMES = kubenova_kind(Volume)
USAGE_PREFIX = "kubenova-volume-"
SWEEP_INTERVAL = 5.0
# While a secret waits with no domain naming it (a migration's target preparing, an attach
# under way, a detach the operator has not withdrawn yet), the next sweep comes sooner: it
# reads only those secrets' Volumes, and a rolled-back target's secret goes within a second.
WAITING_INTERVAL = 1.0
_DESCRIBED = re.compile(r"^kubenova iSCSI CHAP secret of Volume ([a-z0-9.-]+)/([a-z0-9.-]+)$")


def secret_usage(volume_uid: str) -> str:
    """The libvirt secret usage holding a volume's CHAP password on this host."""
    return f"{USAGE_PREFIX}{volume_uid}"


def secret_description(namespace: str, name: str) -> str:
    """The secret's description: which Volume it opens, read back by the sweep."""
    return f"kubenova iSCSI CHAP secret of Volume {namespace}/{name}"


def described_volume(description: str) -> tuple[str, str] | None:
    """(namespace, name) of the Volume a secret's description names; None if none."""
    found = _DESCRIBED.match(description)
    return (found.group(1), found.group(2)) if found else None


class SecretSweeper:
    """Undefines this host's CHAP secrets no attachment here needs; `await run()`."""

    def __init__(
        self,
        client: KubeClient,
        driver: ComputeDriver,
        host: str,
        interval: float = SWEEP_INTERVAL,
    ) -> None:
        self.client = client
        self.driver = driver
        self.host = host
        self.interval = interval
        self._poked = asyncio.Event()
        self.waiting = False  # the last sweep kept a secret that no domain here names

    def poke(self) -> None:
        """Sweep now (an attachment here just ended)."""
        self._poked.set()

    async def run(self) -> None:
        while True:
            self._poked.clear()
            try:
                await self.sweep()
            except (KubenovaError, OSError) as exc:  # libvirtd or the apiserver away: later
                log.warning("CHAP secret sweep on %s: %s", self.host, exc)
            interval = min(self.interval, WAITING_INTERVAL) if self.waiting else self.interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poked.wait(), interval)

    async def sweep(self) -> list[str]:
        """Undefine the secrets of ours no attachment here needs; their usages."""
        started = time.monotonic()
        ours = await asyncio.to_thread(self.driver.list_secrets, USAGE_PREFIX)
        used = await asyncio.to_thread(self.driver.secrets_in_use) if ours else set()
        removed, waiting = [], []
        for usage, description in sorted(ours.items()):
            if usage in used:
                continue
            # Defined after this sweep began (the next one reads its Volume afresh), or
            # still attached here: kept, and looked at again soon.
            if self._defined_since(usage, started) or (
                await self._attached_here(usage, description) or self._defined_since(usage, started)
            ):
                waiting.append(usage)
                continue
            await asyncio.to_thread(self.driver.undefine_secret, usage)
            removed.append(usage)
            log.info("host %s: CHAP secret %s undefined (%s)", self.host, usage, description)
        self.waiting = bool(waiting)
        return removed

    def _defined_since(self, usage: str, started: float) -> bool:
        at = self.driver.secret_defined_at(usage)
        return at is not None and at >= started

    async def _attached_here(self, usage: str, description: str) -> bool:
        """Does the secret's Volume (still the same one) list an attachment on this host?"""
        named = described_volume(description)
        if named is None:
            return False  # ours by usage, no Volume named: nothing can need it
        namespace, name = named
        try:
            volume = await self.client.get(VOLUMES, name, namespace)
        except NotFound:
            return False
        except (ApiError, OSError) as exc:
            log.info("CHAP secret %s kept for now: reading volume %s: %s", usage, name, exc)
            return True  # unknown is never taken for "not attached"
        if secret_usage(uid_of(volume)) != usage:
            return False  # a new Volume under the old name
        attachments = (volume.get("status") or {}).get("attachments") or []
        return any(a.get("host") == self.host for a in attachments)
