"""Errors as each OpenStack service writes them, and the apiserver's refusals translated.

Nova and Cinder: `{"itemNotFound": {"code": 404, "message": ...}}`; Keystone:
`{"error": {"code", "message", "title"}}`; Neutron: `{"NeutronError": {"type", "message",
"detail"}}`; Glance: `{"code", "title", "message"}`. A refusal of the apiserver (RBAC,
the admission webhook) keeps its words and gets the status code Nova would use; a quota
refusal gets each service's own code and words (Nova 403, Cinder 413).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from kubenova.errors import ApiError


class Service(StrEnum):
    IDENTITY = "identity"
    COMPUTE = "compute"
    IMAGE = "image"
    VOLUME = "volume"
    NETWORK = "network"


NOVA_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    501: "notImplemented",
    503: "serviceUnavailable",
}
TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    501: "Not Implemented",
    503: "Service Unavailable",
}
NEUTRON_TYPES = {
    400: "BadRequest",
    401: "NotAuthorized",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
}

# What the inventory says when a claim or an admission goes over a project's quota.
_QUOTA = re.compile(
    r"quota exceeded in project (?P<project>\S+): (?P<what>\S+) "
    r"(?P<used>\d+) \+ (?P<req>\d+) > (?P<limit>\d+)"
)


@dataclass(frozen=True)
class OverQuota:
    """What a quota refusal was about (the Project's spec.quota key) and its numbers."""

    what: str
    used: int
    requested: int
    limit: int

    @classmethod
    def parse(cls, text: str) -> OverQuota | None:
        found = _QUOTA.search(text)
        if found is None:
            return None
        return cls(found["what"], int(found["used"]), int(found["req"]), int(found["limit"]))

    def nova(self) -> str:
        """Nova's words (nova.exception.OverQuota, as servers.py sends them with 403)."""
        return (
            f"Quota exceeded for {self.what}: Requested {self.requested}, but already used "
            f"{self.used} of {self.limit} {self.what}"
        )

    def cinder(self) -> str:
        """Cinder's words (cinder.exception.VolumeLimitExceeded and
        VolumeSizeExceedsAvailableQuota, QuotaErrors: code 413)."""
        if self.what == "volumeGiB":
            return (
                "Requested volume or snapshot exceeds allowed gigabytes quota. Requested "
                f"{self.requested}G, quota is {self.limit}G and {self.used}G has been consumed."
            )
        if self.what == "volumes":
            return f"Maximum number of volumes allowed ({self.limit}) exceeded for quota 'volumes'."
        return self.nova()


class Fault(Exception):
    """An answer that is an error: status code and message, shaped per service on the way out.

    A quota refusal keeps what it was about: each service sends its own code and words
    for it (`render`)."""

    def __init__(self, status: int, message: str, quota: OverQuota | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.quota = quota


def from_api_error(exc: ApiError) -> Fault:
    """The fault a client of OpenStack sees for a refusal of the apiserver."""
    message = exc.message or str(exc)
    quota = OverQuota.parse(message)
    if quota is not None:
        # Nova's v2.1 API answers an over-quota create with 403 at every microversion
        # (nova/api/openstack/compute/servers.py: OverQuota -> HTTPForbidden).
        return Fault(403, quota.nova(), quota)
    if exc.status in (400, 422):
        return Fault(400, message)
    if exc.status in (401, 403, 404, 409):
        return Fault(exc.status, message)
    if exc.status == 429 or exc.status >= 500:
        return Fault(503, f"the cloud's API server is not answering now: {message}")
    return Fault(400, message)


def render(service: Service, fault: Fault) -> web.Response:
    status, message = fault.status, fault.message
    headers = {}
    if service is Service.VOLUME and fault.quota is not None:
        # Cinder's QuotaError is 413 with Retry-After: 0 (it is not a rate limit).
        status, message = 413, fault.quota.cinder()
        headers["Retry-After"] = "0"
    title = TITLES.get(status, "Error")
    body: object
    if service is Service.IDENTITY:
        body = {"error": {"code": status, "message": message, "title": title}}
    elif service is Service.NETWORK:
        body = {
            "NeutronError": {
                "type": NEUTRON_TYPES.get(status, "Error"),
                "message": message,
                "detail": "",
            }
        }
    elif service is Service.IMAGE:
        body = {"code": status, "title": title, "message": message}
    else:
        fields: dict[str, object] = {"code": status, "message": message}
        if "Retry-After" in headers:
            fields["retryAfter"] = headers["Retry-After"]
        body = {NOVA_KEYS.get(status, "computeFault"): fields}
    if status == 401:
        headers["WWW-Authenticate"] = 'Keystone uri="/identity"'
    return web.Response(
        status=status, text=json.dumps(body), content_type="application/json", headers=headers
    )
