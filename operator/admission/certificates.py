"""Keeps the webhook's certificates: made once, shared by the replicas, renewed before expiry.

With `--webhook-tls-secret` the CA and the serving pair live in that Secret (in the
operator's namespace), so every replica behind the webhook Service serves a certificate
of the one CA the configuration trusts; whichever replica first finds the serving
certificate due (less than `renew_before` left) issues a new one and writes the Secret
(optimistic concurrency: a replica that loses the race takes the winner's). Without a
Secret (one replica, dev, tests) the material is kept in memory only.

Each check writes the files kopf serves from; kopf re-reads them every
`file_check_interval` and restarts its server when they changed, publishing the
configuration again.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from kubenova.errors import Conflict
from kubenova.kube import KubeClient, NotFound
from kubenova.kube.paths import SECRETS
from kubenova.operator.admission import tls
from kubenova.operator.admission.policy import CertificatePolicy

log = logging.getLogger(__name__)

SECRET_TYPE = "kubenova.io/webhook-tls"
_KEYS = {"ca.crt", "ca.key", "tls.crt", "tls.key"}


class ServingCertificates:
    """The webhook's CA and serving pair, kept fresh in `directory` (and a shared Secret)."""

    def __init__(
        self,
        directory: Path,
        hosts: list[str],
        policy: CertificatePolicy,
        *,
        client: KubeClient | None = None,
        secret: tuple[str, str] | None = None,  # (namespace, name)
        owner: dict[str, Any] | None = None,
    ) -> None:
        self.directory = directory
        self.hosts = hosts
        self.policy = policy
        self.client = client
        self.secret = secret
        # The Secret's ownerReference (the operator's ClusterRole, like the webhook
        # configurations'): the garbage collector deletes it after `helm uninstall`.
        self.owner = owner
        self.material: tls.Material | None = None

    async def ensure(self) -> tls.ServingFiles:
        """Load or make the material, renew the serving pair if it is due, write the files."""
        material = await self._load()
        if material is None or not tls.signed_by(material.serving, material.ca):
            ca = material.ca if material is not None else tls.make_ca()
            material = await self._store(tls.Material(ca, self._issue(ca)))
        elif self._due(material):
            material = await self._store(tls.Material(material.ca, self._issue(material.ca)))
        self.material = material
        return tls.write_files(self.directory, material)

    async def keep_fresh(self) -> None:
        """Check forever (a task cancelled at shutdown); a failed check is retried next time."""
        while True:
            await asyncio.sleep(self.policy.check_interval)
            try:
                await self.ensure()
            except Exception:
                log.exception("admission: checking the webhook certificate failed")

    def _due(self, material: tls.Material) -> bool:
        return tls.renewal_due(material.serving, self.policy.margin) or not tls.covers(
            material.serving, self.hosts
        )

    def _issue(self, ca: tls.KeyPair) -> tls.KeyPair:
        if tls.renewal_due(ca, self.policy.validity):
            # The CA itself would end before the certificate it signs: a new CA (the
            # published bundle changes; replicas follow within a check interval).
            log.warning("admission: the webhook CA is near its end; making a new one")
            ca = tls.make_ca()
        pair = tls.issue(ca, self.hosts, self.policy.validity)
        log.info(
            "admission: issued a webhook serving certificate valid until %s",
            pair.certificate.not_valid_after_utc.isoformat(),
        )
        return pair

    async def _load(self) -> tls.Material | None:
        if self.client is None or self.secret is None:
            return self.material
        namespace, name = self.secret
        try:
            body = await self.client.get(SECRETS, name, namespace)
        except NotFound:
            self._resource_version = None
            return None
        self._resource_version = body["metadata"].get("resourceVersion")
        return _material(body.get("data") or {})

    async def _store(self, material: tls.Material) -> tls.Material:
        """Keep `material`; with a Secret, the copy every replica agrees on (maybe another's)."""
        if self.client is None or self.secret is None:
            return material
        namespace, name = self.secret
        data = _data(material)
        owned = {"ownerReferences": [self.owner]} if self.owner else {}
        try:
            if self._resource_version is None:
                manifest: dict[str, Any] = {
                    "apiVersion": "v1",
                    "kind": "Secret",
                    "metadata": {
                        "name": name,
                        "namespace": namespace,
                        "labels": {"app.kubernetes.io/managed-by": "kubenova-operator"},
                        **owned,
                    },
                    "type": SECRET_TYPE,
                    "data": data,
                }
                await self.client.create(SECRETS, manifest, namespace)
            else:
                patch = {
                    "metadata": {"resourceVersion": self._resource_version, **owned},
                    "data": data,
                }
                await self.client.patch(SECRETS, name, patch, namespace)
        except Conflict:
            # Another replica stored its material first: serve that one.
            stored = await self._load()
            if stored is None:
                raise
            return stored
        return material

    _resource_version: str | None = None


def _data(material: tls.Material) -> dict[str, str]:
    return {
        key: base64.b64encode(value).decode("ascii")
        for key, value in (
            ("ca.crt", material.ca.cert),
            ("ca.key", material.ca.key),
            ("tls.crt", material.serving.cert),
            ("tls.key", material.serving.key),
        )
    }


def _material(data: dict[str, str]) -> tls.Material | None:
    """The material in a Secret's data, or None when it is incomplete or unreadable."""
    if not set(data) >= _KEYS:
        return None
    try:
        raw = {key: base64.b64decode(data[key], validate=True) for key in _KEYS}
        material = tls.Material(
            tls.KeyPair(raw["ca.crt"], raw["ca.key"]),
            tls.KeyPair(raw["tls.crt"], raw["tls.key"]),
        )
        for pair in (material.ca, material.serving):
            _ = pair.certificate  # parses, or raises ValueError
            serialization.load_pem_private_key(pair.key, password=None)
    except (ValueError, TypeError) as exc:
        log.warning("admission: the webhook certificate Secret is unreadable (%s); replacing", exc)
        return None
    return material
