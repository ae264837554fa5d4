"""Names the operator gives volume things; the agents read them from the Volume's status."""

from __future__ import annotations

from kubenova.operator.inventory.volumes import IQN_PREFIX

MAX_NAME = 253


def initiator_iqn(host: str) -> str:
    """The iSCSI initiator name a host's QEMU logs in with (what target ACLs admit)."""
    return f"{IQN_PREFIX}:host.{host}"


def chap_secret_name(volume: str, uid: str) -> str:
    """The Secret holding a volume's CHAP credentials (same namespace as the Volume)."""
    name = f"{volume}-chap"
    return name if len(name) <= MAX_NAME else f"volume-{uid}-chap"


def chap_username(uid: str) -> str:
    """A CHAP user per volume: tgtd's accounts are daemon-wide, so it must be unique."""
    return f"volume-{uid}"
