"""The mutating half of the webhook: each kind's finalizers from creation on.

Placing an Instance or Volume is then one status write (`status.host` + Scheduled): no
separate metadata patch races the hand-over, and an agent never meets an object whose
deletion nobody waits for. The reconcilers still add what is missing (objects created
before, or while the webhook was off); the placement policy admits exactly these
finalizers on CREATE (`placement-is-the-operators.yaml`).
"""

from __future__ import annotations

from kubenova.kube.meta import Body, finalizers_of
from kubenova.wellknown import FINALIZERS_AT_CREATION


def finalizers_at_creation(plural: str, body: Body) -> list[str] | None:
    """The finalizers `body` is created with: its own, then its kind's missing ones.

    None when nothing is missing (no patch). The order of what the maker wrote is kept.
    """
    present = finalizers_of(body)
    missing = [f for f in FINALIZERS_AT_CREATION.get(plural, ()) if f not in present]
    return [*present, *missing] if missing else None
