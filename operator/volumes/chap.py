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
from kubenova.kube.meta import Body, owners_of, uid_of
from kubenova.kube.paths import SECRETS
from kubenova.operator.volumes.naming import chap_secret_name, chap_username

SECRET_TYPE = "kubenova.io/iscsi-chap"
VOLUME_LABEL = "kubenova.io/volume"


class SecretConflict(Exception):
    """A Secret of that name exists and is not this volume's."""


def chap_secret(volume: Body) -> Body:
    """A fresh Secret manifest for `volume` (a new random password each call)."""
    meta = volume["metadata"]
    password = secrets.token_urlsafe(12)  # 16 characters, within every initiator's limits

    def encoded(text: str) -> str:
        return base64.b64encode(text.encode()).decode()

    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": SECRET_TYPE,
        "metadata": {
            "name": chap_secret_name(meta["name"], meta["uid"]),
            "namespace": meta["namespace"],
            "labels": {VOLUME_LABEL: meta["name"]},
            "ownerReferences": [
                {
                    "apiVersion": volume.get("apiVersion", "kubenova.io/v1alpha1"),
                    "kind": "Volume",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "data": {"username": encoded(chap_username(meta["uid"])), "password": encoded(password)},
    }


def owned_by(secret: Body, volume_uid: str) -> bool:
    refs = owners_of(secret)
    return any(ref.get("uid") == volume_uid for ref in refs)


async def ensure_chap_secret(client: KubeClient, volume: Body) -> str:
    """The name of the volume's CHAP Secret, created if missing; SecretConflict if taken."""
    manifest = chap_secret(volume)
    meta = manifest["metadata"]
    uid = uid_of(volume)
    try:
        existing = await client.get(SECRETS, meta["name"], meta["namespace"])
    except NotFound:
        try:
            await client.create(SECRETS, manifest, meta["namespace"])
            return str(meta["name"])
        except Conflict:  # created meanwhile (by us on another pass, or someone else)
            existing = await client.get(SECRETS, meta["name"], meta["namespace"])
    if not owned_by(existing, uid):
        raise SecretConflict(
            f"Secret {meta['namespace']}/{meta['name']} exists and does not belong to this "
            "volume: delete or rename it, then the volume is placed"
        )
    return str(meta["name"])


async def delete_chap_secret(client: KubeClient, volume: Body) -> None:
    """Delete the volume's Secret if it is the volume's (absent is fine)."""
    meta = volume["metadata"]
    name = chap_secret_name(meta["name"], meta["uid"])
    try:
        existing = await client.get(SECRETS, name, meta["namespace"])
        if owned_by(existing, meta["uid"]):
            await client.delete(SECRETS, name, meta["namespace"])
    except NotFound:
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
