"""Compute microversions: `OpenStack-API-Version: compute 2.79` (or the legacy
`X-OpenStack-Nova-API-Version`), negotiated between 2.1 and MAX; the answer says which."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from aiohttp import web

from kubenova.openstack.faults import Fault


class Version(NamedTuple):
    major: int
    minor: int

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MICROVERSION_KEY: web.RequestKey[Version] = web.RequestKey("osapi.microversion", Version)
MIN = Version(2, 1)
MAX = Version(2, 79)


def parse(text: str) -> Version:
    text = text.strip()
    if text == "latest":
        return MAX
    try:
        major, minor = (int(part) for part in text.split("."))
    except ValueError as exc:
        raise Fault(400, f"Invalid API version request: {text!r}") from exc
    return Version(major, minor)


def negotiate(headers: Mapping[str, str]) -> Version:
    """The version asked for (2.1 when none), or a 406 Fault outside [MIN, MAX]."""
    asked: str | None = None
    for value in headers.get("OpenStack-API-Version", "").split(","):
        service, _, text = value.strip().partition(" ")
        if service.lower() == "compute" and text:
            asked = text
    if asked is None:
        asked = headers.get("X-OpenStack-Nova-API-Version")
    if not asked:
        return MIN
    version = parse(asked)
    if not MIN <= version <= MAX:
        raise Fault(
            406,
            f"Version {version} is not supported by the API. Minimum is {MIN} "
            f"and maximum is {MAX}.",
        )
    return version


def version_headers(version: Version) -> dict[str, str]:
    return {
        "OpenStack-API-Version": f"compute {version}",
        "X-OpenStack-Nova-API-Version": str(version),
        "Vary": "OpenStack-API-Version, X-OpenStack-Nova-API-Version",
    }
