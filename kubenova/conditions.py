"""Conditions as the API conventions describe them, computed purely from the old list."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

Condition = dict[str, Any]


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find(conditions: list[Condition] | None, type_: str) -> Condition | None:
    """The condition of `type_`, or None."""
    return next((c for c in conditions or () if c.get("type") == type_), None)


def is_true(conditions: list[Condition] | None, type_: str) -> bool:
    found = find(conditions, type_)
    return found is not None and found.get("status") == "True"


def condition(
    type_: str,
    status: bool | str,
    reason: str,
    message: str = "",
    *,
    generation: int | None = None,
    previous: list[Condition] | None = None,
) -> Condition:
    """A condition entry; lastTransitionTime is kept from `previous` when status is unchanged."""
    status_text = status if isinstance(status, str) else ("True" if status else "False")
    old = find(previous, type_)
    since = (
        old["lastTransitionTime"]
        if old and old.get("status") == status_text and old.get("lastTransitionTime")
        else now_rfc3339()
    )
    entry: Condition = {
        "type": type_,
        "status": status_text,
        "reason": reason,
        "message": message,
        "lastTransitionTime": since,
    }
    if generation is not None:
        entry["observedGeneration"] = generation
    return entry


def same(a: Condition | None, b: Condition | None) -> bool:
    """Equal but for lastTransitionTime: writing b over a would change nothing a user sees."""
    if a is None or b is None:
        return a is b
    keys = ("type", "status", "reason", "message", "observedGeneration")
    return all(a.get(k) == b.get(k) for k in keys)
