"""The apiserver's and the webhook's refusals, put next to the form field they are about."""

from __future__ import annotations

import re
from dataclasses import dataclass

from kubenova.errors import ApiError

# Field path in a refusal -> the form field that sets it.
FIELDS: dict[str, str] = {
    "metadata.name": "name",
    "spec.flavor": "flavor",
    "spec.resources": "flavor",
    "spec.image": "image",
    "spec.networks": "network",
    "spec.placement.group": "group",
    "spec.placement": "group",
    "spec.availabilityZone": "availabilityZone",
    "spec.volumes": "volumes",
    "spec.userData": "userData",
    "spec.sizeGiB": "sizeGiB",
    "spec.protocol": "protocol",
}
_PATH = re.compile(r"\b(metadata\.name|spec\.[A-Za-z0-9_.\[\]]+)")
_WEBHOOK = re.compile(r'^admission webhook "[^"]+" denied the request:\s*')
# Reason Forbidden reads "is forbidden: ", reason Invalid "is invalid: : " (no field path).
_POLICY = re.compile(
    r"^\S+ \S+ is (?:forbidden|invalid: ): ValidatingAdmissionPolicy '[^']+' "
    r"with binding '[^']+' denied request:\s*"
)


@dataclass(frozen=True)
class Refusal:
    """What to tell the user, and which form field (None: the form as a whole) it is about."""

    field: str | None
    message: str


def _field_of(path: str) -> str | None:
    path = re.sub(r"\[\d+\]", "", path)
    while path:
        if path in FIELDS:
            return FIELDS[path]
        path = path.rpartition(".")[0]
    return None


def refusals(error: ApiError, *, what: str = "this") -> list[Refusal]:
    """One Refusal per cause the apiserver gave (CRD schema, CEL rules, webhook, RBAC)."""
    message = error.message
    if error.status == 403 and " cannot " in message and "denied" not in message:
        return [Refusal(None, f"Your role in this project does not allow you to change {what}.")]
    message = _WEBHOOK.sub("", _POLICY.sub("", message)).strip() or str(error)
    if error.status == 422 and " is invalid: " in message:
        causes = message.split(" is invalid: ", 1)[1].strip().removeprefix("[").removesuffix("]")
        found = []
        for cause in _CAUSE_SPLIT.split(causes):
            path, _, why = cause.partition(": ")
            found.append(Refusal(_field_of(path), _plain(why) or cause))
        return found
    if error.status == 409:
        return [Refusal("name", "That name is taken in this project; choose another.")]
    paths = _PATH.findall(message)
    return [Refusal(_field_of(paths[0]) if paths else None, message)]


_CAUSE_SPLIT = re.compile(r", (?=(?:metadata|spec)\.)")


# Kubernetes' name rule, said the way a form would say it.
_NAME_RULE = (
    "Use only lowercase letters, digits, '-' and '.', starting and ending with a letter or "
    "digit (at most 253 characters)."
)


def _plain(message: str) -> str:
    if "RFC 1123" in message:
        return _NAME_RULE
    # 'Invalid value: "x": why' -> 'why (x)': the reason first, the echoed value after
    match = re.match(r'^(?:Invalid value|Unsupported value): ("[^"]*"|\S+): (.*)$', message, re.S)
    if match:
        return f"{match.group(2)} (you gave {match.group(1)})"
    return message
