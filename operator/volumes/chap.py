"""The per-volume CHAP Secret: generated once by the operator, read by both agents.

The volume host's agent binds the credentials to the volume's target; the compute host's
agent stores the password in a libvirt secret for QEMU's initiator. The Secret is owned
by the Volume (garbage collected with it in a cluster) and deleted by the operator when
the Volume is finalised.
"""

from __future__ import annotations

import base64
import secrets

from kubenova.kube import ApiError, Conflict, KubeClient, NotFound
from kubenova.kube.meta import Body, key_of, name_of, namespace_of, owners_of, uid_of
from kubenova.kube.paths import SECRETS
from kubenova.operator.volumes.naming import chap_secret_name, chap_username

SECRET_TYPE = "kubenova.io/iscsi-chap"
VOLUME_LABEL = "kubenova.io/volume"


class SecretConflict(Exception):
    """A Secret of that name exists and is not this volume's."""


def chap_secret(volume: Body) -> Body:
    """A fresh Secret manifest for `volume` (a new random password each call)."""
    password = secrets.token_urlsafe(12)  # 16 characters, within every initiator's limits

    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": chap_secret_name(name_of(volume), uid_of(volume)),
            "namespace": namespace_of(volume),
            "labels": {VOLUME_LABEL: name_of(volume)},
            "ownerReferences": [
                {
                    "apiVersion": volume.get("apiVersion", "kubenova.io/v1alpha1"),
                    "kind": "Volume",
                    "name": name_of(volume),
                    "uid": uid_of(volume),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"username": encoded(chap_username(uid_of(volume))), "password": encoded(password)},
    }


def owned_by(secret: Body, volume_uid: str) -> bool:
    refs = owners_of(secret)
    return any(ref.get("uid") == volume_uid for ref in refs)


async def ensure_chap_secret(client: KubeClient, volume: Body) -> str:
    """The name of the volume's CHAP Secret, created if missing; SecretConflict if taken."""
    manifest = chap_secret(volume)
    uid = uid_of(volume)
    try:
        existing = await client.get(SECRETS, name_of(manifest), namespace_of(manifest))
    except NotFound:
        try:
            await client.create(SECRETS, manifest, namespace_of(manifest))
            return name_of(manifest)
        except Conflict:  # created meanwhile (by us on another pass, or someone else)
            existing = await client.get(SECRETS, name_of(manifest), namespace_of(manifest))
    if not owned_by(existing, uid):
        raise SecretConflict(
            f"Secret {key_of(manifest)} exists and does not belong to this "
            "volume: delete or rename it, then the volume is placed"
        )
    return name_of(manifest)


async def delete_chap_secret(client: KubeClient, volume: Body) -> None:
    """Delete the volume's Secret if it is the volume's (absent is fine)."""
    name = chap_secret_name(name_of(volume), uid_of(volume))
    try:
        existing = await client.get(SECRETS, name, namespace_of(volume))
        if owned_by(existing, uid_of(volume)):
            await client.delete(SECRETS, name, namespace_of(volume))
    except NotFound:
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
